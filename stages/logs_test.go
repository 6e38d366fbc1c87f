package stages

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The limiter's clock is each record's time (slog stamps it when the line is logged), so these
// tests give it records stamped with the instants they choose: how fast the loop runs cannot
// refill the budget under them.

// logAt hands h a record of msg at level l, stamped at.
func logAt(t *testing.T, h slog.Handler, at time.Time, l slog.Level, msg string) {
	t.Helper()
	require.NoError(t, h.Handle(context.Background(), slog.NewRecord(at, l, msg, 0)))
}

func TestLogLinesAreRateLimitedPerMessage(t *testing.T) {
	var out bytes.Buffer
	h := newLimitedHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := h.WithAttrs([]slog.Attr{slog.String("stage", "incoming")}) // derived handlers share the limits
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 10_000 {
		logAt(t, log, t0, slog.LevelWarn, "bad frame")
		logAt(t, log, t0, slog.LevelDebug, "debug line") // never limited
	}
	logAt(t, log, t0, slog.LevelInfo, "other message") // its own budget
	assert.Equal(t, logBurst, strings.Count(out.String(), "bad frame"), "a flood of one message is cut to its burst")
	assert.Equal(t, 10_000, strings.Count(out.String(), "debug line"))
	assert.Contains(t, out.String(), "other message")

	// A second later, logRate more; the first says how many were suppressed before it.
	out.Reset()
	for range 100 {
		logAt(t, h, t0.Add(time.Second), slog.LevelWarn, "bad frame")
	}
	assert.Equal(t, logRate, strings.Count(out.String(), "bad frame"), "the budget refills at logRate a second")
	assert.Equal(t, 1, strings.Count(out.String(), "suppressed="))
	assert.Contains(t, out.String(), "suppressed=9980", "10,000 logged, the burst written")

	// A minute later the whole burst again, no more.
	out.Reset()
	for range 100 {
		logAt(t, h, t0.Add(time.Minute), slog.LevelError, "bad frame")
	}
	assert.Equal(t, logBurst, strings.Count(out.String(), "bad frame"))
	assert.Contains(t, out.String(), "suppressed=95")
}

// TestLoggerLinesAreRateLimited: through a slog.Logger, which stamps records with the real
// clock. How long the flood takes is not known, so the bound allows logRate a second of it.
func TestLoggerLinesAreRateLimited(t *testing.T) {
	var out bytes.Buffer
	log := LimitLogs(slog.New(slog.NewTextHandler(&out, nil))).With("stage", "incoming")
	assert.Same(t, log.Handler().(*limitedHandler).state, LimitLogs(log).Handler().(*limitedHandler).state,
		"a limited logger is not limited twice")
	start := time.Now()
	for range 10_000 {
		log.Warn("bad frame", "conn", 1)
	}
	took := time.Since(start)
	lines := strings.Count(out.String(), "bad frame")
	assert.GreaterOrEqual(t, lines, logBurst)
	assert.LessOrEqual(t, lines, logBurst+int(math.Ceil(took.Seconds()*logRate)), "took %v", took)
}
