package stages_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages"
)

// Log lines about a client name it (SessionMgr keeps each session's address), and a short
// client's session logs nothing at info.

// logRecorder keeps a daemon's log lines (JSON) for a test to read.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// lines returns every line logged with message msg.
func (r *logRecorder) lines(t *testing.T, msg string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func startLoggedDaemon(t *testing.T, level slog.Level, cfg daemon.Config) (*daemon.Daemon, *logRecorder) {
	rec := &logRecorder{}
	cfg.Logger = slog.New(slog.NewJSONHandler(rec, &slog.HandlerOptions{Level: level}))
	cfg.Store = t.TempDir()
	cfg.Incoming.Transport.Addr = "127.0.0.1:0"
	d, err := daemon.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d, rec
}

// TestLogLinesAboutAClientNameItsAddress: a refused hello, a session, its end and its expiry
// are logged with the client's address.
func TestLogLinesAboutAClientNameItsAddress(t *testing.T) {
	d, logs := startLoggedDaemon(t, slog.LevelDebug, daemon.Config{
		Sessions: stages.SessionConfig{Tokens: []string{"s3cret"}}})
	_, err := client.Dial(d.Addr().String(), client.WithToken("guess"))
	require.ErrorIs(t, err, client.ErrUnauthorized)
	c, err := client.Dial(d.Addr().String(), client.WithToken("s3cret"), client.WithName("logged"))
	require.NoError(t, err)
	require.NoError(t, c.Ping(pctest.Context(t)))
	c.Close()
	pctest.WaitFor(t, func() bool { return len(logs.lines(t, "session ended")) > 0 }, "no session ended")

	for _, msg := range []string{"hello refused: bad token", "session", "session ended"} {
		lines := logs.lines(t, msg)
		require.NotEmpty(t, lines, msg)
		for _, l := range lines {
			assert.Regexp(t, `^127\.0\.0\.1:\d+$`, l["addr"], "%s: %v", msg, l)
		}
	}
}

// TestSessionsOfShortClientsLogNothingAtInfo: a client that opens a session, makes one call and
// closes (every pipecachectl command) leaves no line at the default level.
func TestSessionsOfShortClientsLogNothingAtInfo(t *testing.T) {
	d, logs := startLoggedDaemon(t, slog.LevelInfo, daemon.Config{})
	before := len(logs.lines(t, "session")) + len(logs.lines(t, "session ended"))
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Ping(pctest.Context(t)))
	c.Close()
	pctest.WaitFor(t, func() bool { return d.SessionStats().Sessions == 0 }, "the session never ended")
	assert.Equal(t, before, len(logs.lines(t, "session"))+len(logs.lines(t, "session ended")))
}
