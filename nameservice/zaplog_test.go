package nameservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// logLines decodes the JSON lines a slog JSON handler wrote.
func logLines(tb testing.TB, buf *bytes.Buffer) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(tb, json.Unmarshal([]byte(l), &m), l)
		lines = append(lines, m)
	}
	return lines
}

func TestZapLinesReachSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	z := zapToSlog(log.With("component", "etcd-client")).Named("client").With(zap.String("endpoint", "10.0.0.1:2379"))

	z.Debug("below the level: dropped")
	z.Info("connected", zap.Int("members", 3))
	z.Warn("retrying of unary invoker failed", zap.Error(errors.New("context deadline exceeded")), zap.Duration("backoff", 0))
	z.Error("lease keepalive failed")

	lines := logLines(t, &buf)
	require.Len(t, lines, 3)
	tests := []struct {
		level, msg string
		attrs      map[string]any
	}{
		{"INFO", "connected", map[string]any{"members": float64(3)}},
		{"WARN", "retrying of unary invoker failed", map[string]any{"error": "context deadline exceeded", "backoff": float64(0)}},
		{"ERROR", "lease keepalive failed", nil},
	}
	for i, tt := range tests {
		l := lines[i]
		assert.Equal(t, tt.level, l["level"])
		assert.Equal(t, tt.msg, l["msg"])
		assert.Equal(t, "etcd-client", l["component"], "the slog logger's own attributes")
		assert.Equal(t, "client", l["logger"], "zap's logger name")
		assert.Equal(t, "10.0.0.1:2379", l["endpoint"], "zap's With fields")
		for k, v := range tt.attrs {
			assert.Equal(t, v, l[k], "%s in %v", k, l)
		}
	}
}

func TestZapRepeatedLinesAreSampled(t *testing.T) {
	var buf bytes.Buffer
	z := zapToSlog(slog.New(slog.NewJSONHandler(&buf, nil)))
	for range 1000 {
		z.Warn("retrying of unary invoker failed")
	}
	n := len(logLines(t, &buf))
	assert.Less(t, n, 50, "a line repeated on every retry is sampled")
	assert.Positive(t, n)
}
