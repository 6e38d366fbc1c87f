package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// TestStatsShowsTheServersBuild: stats prints which build the server runs, first, then its
// counters; -json has it as "version".
func TestStatsShowsTheServersBuild(t *testing.T) {
	d, err := daemon.Start(context.Background(), daemon.Config{Store: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Version: "v9.9.9 test build", Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}}})
	require.NoError(t, err)
	t.Cleanup(func() { d.Stop(context.Background()) })
	tc := newTestCtl(t, config{addr: d.Addr().String()}, formatText)
	out, err := tc.do("stats")
	require.NoError(t, err)
	assert.Regexp(t, `^version: v9\.9\.9 test build\n`, out)
	assert.Contains(t, out, "\nuptime_ms: ")

	js := newTestCtl(t, config{addr: d.Addr().String()}, formatJSON)
	out, err = js.do("stats")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, "v9.9.9 test build", got["version"])
	assert.Contains(t, got, "sessions")
}
