package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// TestSlowLogCommand: slowlog prints the server's slow log, newest first, with op, key, code
// and client; -json as one object.
func TestSlowLogCommand(t *testing.T) {
	d, err := daemon.Start(context.Background(), daemon.Config{Store: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}, SlowLog: time.Nanosecond}})
	require.NoError(t, err)
	t.Cleanup(func() { d.Stop(context.Background()) })
	tc := newTestCtl(t, config{addr: d.Addr().String()}, formatText)
	_, err = tc.do("set", "slow key", "v")
	require.NoError(t, err)
	out, err := tc.do("slowlog")
	require.NoError(t, err)
	assert.Regexp(t, `^1\) \S+ set "slow key" \(ok\) from 127\.0\.0\.1:\d+ session \d+ at `, out)

	js := newTestCtl(t, config{addr: d.Addr().String()}, formatJSON)
	out, err = js.do("slowlog")
	require.NoError(t, err)
	var got struct{ Slowlog []map[string]any }
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	keys := map[string]any{}
	for _, e := range got.Slowlog {
		keys[e["op"].(string)] = e["key"]
	}
	assert.Equal(t, "slow key", keys["set"], "the set is in it (after this client's own hello)")
}
