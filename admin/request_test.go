package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages"
)

// TestRequestsAreMeasuredByOpAndCode: every reply is in pipecache_replies_total{op,code} and
// its duration in pipecache_request_duration_seconds{op}; the queues the requests and their
// replies waited in have their waits in pipecache_queue_wait_seconds{stage,queue}.
func TestRequestsAreMeasuredByOpAndCode(t *testing.T) {
	d, srv := startDaemon(t, daemon.Config{})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	_, err = c.Set(ctx, "k", []byte("v"))
	require.NoError(t, err)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	_, err = c.Get(ctx, "missing")
	require.ErrorIs(t, err, client.ErrNotFound)

	m := scrape(t, srv)
	assert.Equal(t, float64(1), m.value(t, "pipecache_replies_total", "op", "get", "code", "ok"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_replies_total", "op", "get", "code", "not_found"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_replies_total", "op", "set", "code", "ok"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_replies_total", "op", "hello", "code", "ok"))
	get := m.find(t, "pipecache_request_duration_seconds", "op", "get").Histogram
	require.NotNil(t, get)
	assert.Equal(t, uint64(2), get.GetSampleCount())
	set := m.find(t, "pipecache_request_duration_seconds", "op", "set").Histogram
	assert.Positive(t, set.GetSampleSum(), "a durable write takes time")
	buckets := set.GetBucket()
	require.NotEmpty(t, buckets)
	assert.Equal(t, set.GetSampleCount(), buckets[len(buckets)-1].GetCumulativeCount(), "the last bound holds them all (a write under 4 s)")
	for _, q := range [][2]string{{"cacheprc", "requests"}, {"incoming", "replies"}, {"sessionmgr", "requests"}} {
		h := m.find(t, "pipecache_queue_wait_seconds", "stage", q[0], "queue", q[1]).Histogram
		require.NotNil(t, h, "%v", q)
		assert.Positive(t, h.GetSampleCount(), "%v", q)
	}
}

// TestSlowLogEndpoint: /slowlog is the slow log as JSON, newest first.
func TestSlowLogEndpoint(t *testing.T) {
	d, srv := startDaemon(t, daemon.Config{Incoming: stages.IncomingConfig{SlowLog: time.Nanosecond}})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(pctest.Context(t), "slow:1", []byte("v"))
	require.NoError(t, err)
	code, body := get(t, srv, "/slowlog")
	require.Equal(t, http.StatusOK, code, body)
	var log []client.SlowRequest
	require.NoError(t, json.Unmarshal([]byte(body), &log), body)
	require.NotEmpty(t, log)
	assert.Equal(t, "set", log[0].Op)
	assert.Equal(t, "slow:1", log[0].Key)
	assert.Contains(t, log[0].Client, "127.0.0.1:")
	assert.Positive(t, scrape(t, srv).value(t, "pipecache_slow_requests_total"))

	code, _ = get(t, listenAdmin(t), "/slowlog")
	assert.Equal(t, http.StatusServiceUnavailable, code, "no daemon yet")
}
