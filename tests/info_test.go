package tests

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// TestInfo (#27 item 1): info answers Redis's INFO's sections, in order, with the daemon's
// figures (the keys it caches, its mode, store, durability and loops, its build); one section
// when asked for one, in any case; an unknown section is bad_request naming the sections.
func TestInfo(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Version: "v9.8.7-test"})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	for _, k := range []string{"info:1", "info:2", "info:3"} {
		_, err := c.Set(ctx, k, []byte("v"))
		require.NoError(t, err)
	}

	text, err := c.Info(ctx, "")
	require.NoError(t, err)
	var titles []string
	for line := range strings.Lines(text) {
		if t, ok := strings.CutPrefix(line, "# "); ok {
			titles = append(titles, strings.ToLower(strings.TrimSpace(t)))
		}
	}
	assert.Equal(t, client.InfoSections, titles, "every section, in the protocol's order:\n%s", text)

	info := client.ParseInfo(text)
	server := info["server"]
	assert.Equal(t, "v9.8.7-test", server["version"])
	assert.Equal(t, "single", server["mode"])
	assert.Equal(t, d.Snapshot().Loops[0].Name, strings.TrimPrefix(strings.Split(server["loop0"], ",")[0], "name="))
	assert.Equal(t, "pebble", info["persistence"]["store"])
	assert.Equal(t, "always", info["persistence"]["fsync"])
	assert.Equal(t, "0", info["persistence"]["pending_writes"], "every write was acknowledged, so committed")
	assert.GreaterOrEqual(t, atoi(t, info["clients"]["sessions"]), 1, "this client's session")
	assert.GreaterOrEqual(t, atoi(t, info["keyspace"]["cache_entries"]), 3)
	assert.GreaterOrEqual(t, atoi(t, info["stats"]["sets"]), 3)
	assert.Positive(t, atoi(t, info["memory"]["cache_bytes"]))
	assert.Equal(t, "256 MiB", info["memory"]["memory_budget_human"])

	one, err := c.Info(ctx, "KeySpace")
	require.NoError(t, err)
	assert.Equal(t, []string{"keyspace"}, slices.Collect(maps.Keys(client.ParseInfo(one))), one)

	_, err = c.Info(ctx, "replication")
	require.ErrorIs(t, err, client.ErrBadRequest)
	assert.ErrorContains(t, err, strings.Join(client.InfoSections, ", "))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "%q", s)
	return n
}
