package stages_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// Incoming measures every request (incoming_requests.go), run as package daemon wires it.

// opRequests returns what the daemon counted of op.
func opRequests(d *daemon.Daemon, op string) stages.OpRequests {
	for _, o := range d.Snapshot().Requests.Ops {
		if o.Op == op {
			return o
		}
	}
	return stages.OpRequests{Op: op, Replies: map[string]uint64{}}
}

// TestEveryRequestIsMeasured: each reply is counted by op and code, its duration in the op's
// histogram, whether a later stage answered it (CachePrc, SessionMgr) or Incoming itself
// (ping, a refusal); the queues the requests and replies waited in measure the waits.
func TestEveryRequestIsMeasured(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{MaxKey: 10})
	c := stages.Dial(t, d.Addr().String())
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "k", []byte("v"))
	require.NoError(t, err)
	for range 3 {
		_, err = c.Get(ctx, "k")
		require.NoError(t, err)
	}
	_, err = c.Get(ctx, "missing")
	require.ErrorIs(t, err, client.ErrNotFound)
	_, err = c.Incr(ctx, "k", 1)
	require.ErrorIs(t, err, client.ErrNotCounter)
	_, err = c.Get(ctx, "a key over ten bytes")
	require.ErrorIs(t, err, client.ErrTooLarge) // refused by Incoming itself
	require.NoError(t, c.Ping(ctx))

	get := opRequests(d, "get")
	assert.Equal(t, map[string]uint64{"ok": 3, "not_found": 1, "too_large": 1}, get.Replies)
	assert.Equal(t, uint64(5), get.Duration.Count(), "one duration per reply")
	assert.Positive(t, get.Duration.Sum)
	assert.Equal(t, map[string]uint64{"ok": 1}, opRequests(d, "set").Replies)
	assert.Equal(t, map[string]uint64{"not_counter": 1}, opRequests(d, "incr").Replies)
	assert.Equal(t, uint64(1), opRequests(d, "ping").Replies["ok"])
	assert.Equal(t, uint64(1), opRequests(d, "hello").Replies["ok"])

	waits := map[string]uint64{}
	for _, l := range d.Snapshot().Loops {
		for _, q := range l.Queues {
			waits[q.Name] = q.Wait.Count()
		}
	}
	assert.GreaterOrEqual(t, waits["cacheprc.requests"], uint64(6), "requests CachePrc served")
	assert.GreaterOrEqual(t, waits["incoming.replies"], uint64(7), "their replies, and the hello's")
	assert.GreaterOrEqual(t, waits["sessionmgr.requests"], uint64(1), "the hello")
}

// TestSlowLogKeepsTheMostRecentSlowRequests: requests at or over the threshold go to a ring of
// the most recent ones, newest first, with op, key, duration and client; faster ones do not,
// and the slowlog op reads it.
func TestSlowLogKeepsTheMostRecentSlowRequests(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{Incoming: stages.IncomingConfig{SlowLog: time.Nanosecond, SlowLogLen: 3}})
	c := stages.Dial(t, d.Addr().String())
	ctx := pctest.Context(t)
	for i := range 5 {
		_, err := c.Set(ctx, fmt.Sprint("key", i), []byte("v")) // a durable write: never 0 ns
		require.NoError(t, err)
	}
	require.NoError(t, c.Ping(ctx)) // answered where it was decoded: 0 ns, not slow

	log, err := d.SlowLog(ctx)
	require.NoError(t, err)
	require.Len(t, log, 3, "the ring holds three")
	for i, e := range log {
		assert.Equal(t, "set", e.Op)
		assert.Equal(t, fmt.Sprint("key", 4-i), e.Key, "newest first")
		assert.Equal(t, "ok", e.Code)
		assert.Equal(t, "cacheprc", e.Stage)
		assert.Positive(t, e.DurationUs+1)
		assert.Contains(t, e.Client, "127.0.0.1:")
		assert.Equal(t, c.Session(), e.Session)
		assert.WithinDuration(t, time.Now(), e.Time, time.Minute)
	}
	assert.GreaterOrEqual(t, d.Snapshot().Requests.Slow, uint64(5))

	viaWire, err := c.SlowLog(ctx)
	require.NoError(t, err)
	require.Len(t, viaWire, 3)
	assert.Equal(t, log[0].Key, viaWire[0].Key)
}

// TestSlowLogOff: a negative threshold keeps no slow log.
func TestSlowLogOff(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{Incoming: stages.IncomingConfig{SlowLog: -1}})
	c := stages.Dial(t, d.Addr().String())
	_, err := c.Set(pctest.Context(t), "k", []byte("v"))
	require.NoError(t, err)
	log, err := c.SlowLog(pctest.Context(t))
	require.NoError(t, err)
	assert.Empty(t, log)
}
