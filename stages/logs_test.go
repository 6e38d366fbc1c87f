package stages

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLogLinesAreRateLimitedPerMessage(t *testing.T) {
	var out bytes.Buffer
	h := newLimitedHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := slog.New(h).With("stage", "incoming")
	// Every line at one instant, as a flood would be on a fast machine: on a slow one, lines
	// logged over seconds would earn their rate's tokens, and the test would measure the machine.
	at := time.Now()
	record := func(level slog.Level, msg string) {
		r := slog.NewRecord(at, level, msg, 0)
		r.AddAttrs(slog.Int("conn", 1))
		assert.NoError(t, log.Handler().Handle(context.Background(), r))
	}
	for range 10_000 {
		record(slog.LevelWarn, "bad frame")
		record(slog.LevelDebug, "debug line") // never limited
	}
	record(slog.LevelInfo, "other message") // its own budget
	lines := strings.Count(out.String(), "bad frame")
	assert.LessOrEqual(t, lines, logBurst+5, "a flood of one message is cut to its burst")
	assert.GreaterOrEqual(t, lines, logBurst)
	assert.Equal(t, 10_000, strings.Count(out.String(), "debug line"))
	assert.Contains(t, out.String(), "other message")

	// Later, the next line says how many were suppressed.
	out.Reset()
	h.state.mu.Lock()
	for _, m := range h.state.msgs {
		m.at = m.at.Add(-time.Minute)
	}
	h.state.mu.Unlock()
	log.Warn("bad frame", "conn", 2)
	assert.Regexp(t, `suppressed=\d{4}`, out.String())
}
