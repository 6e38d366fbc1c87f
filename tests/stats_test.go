package tests

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestStatsReportsTheServer: the stats op reports the server's state and limits beside the
// cache's counters, all as integers (the SDK decodes it into a map of integers), and the
// version only to a client that asks for text values.
func TestStatsReportsTheServer(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Version: "v9.9.9-test", Cache: stages.CacheConfig{Memory: 32 << 20},
		MaxKey: 100, MaxValue: 1 << 15})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	sub, err := c.Subscribe(ctx, "p:")
	require.NoError(t, err)
	defer sub.Unsubscribe(ctx)

	stats, err := c.Stats(ctx)
	require.NoError(t, err, "every value an integer")
	for key, want := range map[string]int64{
		"sessions": 1, "conversations": 1, "subscriptions": 1,
		"memory_budget_bytes": 32 << 20, "max_key_bytes": 100, "max_value_bytes": 1 << 15,
		"max_conns": 100_000,
	} {
		assert.Equal(t, want, stats[key], key)
	}
	for _, key := range []string{"heap_bytes", "rss_bytes"} {
		assert.Positive(t, stats[key], key)
	}
	assert.Contains(t, stats, "uptime_ms")
	assert.Contains(t, stats, "gets", "the cache's counters are still there")
	assert.NotContains(t, stats, "version", "text only when asked")

	raw := dialRawConn(t, d.Addr().String())
	raw.hello("")
	h, v := raw.call(wire.Header{Op: task.OpStats, ID: 2, Flags: task.FlagStatsText}, nil)
	require.Equal(t, task.CodeOK, h.Code, h.Msg)
	var full map[string]any
	require.NoError(t, json.Unmarshal(v, &full))
	assert.Equal(t, "v9.9.9-test", full["version"])
	assert.EqualValues(t, 2, full["sessions"], "the SDK's and the raw one")
	h, _ = raw.call(wire.Header{Op: task.OpStats, ID: 3, Flags: 2}, nil)
	assert.Equal(t, task.CodeBadRequest, h.Code, "an undefined flag is refused")
}
