package admin_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/processor"
)

// TestExecMetrics: every processor call shows in the histogram of its time; every exec in
// pipecache_exec_total, and its errors by kind.
func TestExecMetrics(t *testing.T) {
	d, srv := startDaemon(t, daemon.Config{})
	ctx := pctest.Context(t)
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	for range 3 {
		_, _, err := c.Exec(ctx, "board", "zset", processor.ZIncrArgs("ann", 1))
		require.NoError(t, err)
	}
	_, _, err = c.Exec(ctx, "board", "zset", []byte("?"))
	require.ErrorIs(t, err, client.ErrBadRequest)
	_, _, err = c.Exec(ctx, "board", "nope", nil)
	require.ErrorIs(t, err, client.ErrUnknownProcessor)

	m := scrape(t, srv)
	assert.Equal(t, float64(5), m.value(t, "pipecache_exec_total"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_exec_errors_total", "kind", "bad_args"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_exec_errors_total", "kind", "unknown_processor"))
	assert.Zero(t, m.value(t, "pipecache_exec_errors_total", "kind", "internal"))
	h := m.histogram(t, "pipecache_exec_duration_seconds")
	assert.Equal(t, uint64(4), h.GetSampleCount(), "the calls that ran a processor (not the unknown one)")
	assert.Positive(t, h.GetSampleSum())
	assert.InDelta(t, h.GetSampleSum(), m.value(t, "pipecache_exec_seconds_total"), 1e-9)
}
