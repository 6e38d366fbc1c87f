package stages_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/stages"
)

// startExecDaemon runs a daemon with the built-in processors and testProcs, and dials it.
func startExecDaemon(tb testing.TB, cfg daemon.Config) (*daemon.Daemon, *client.Client) {
	tb.Helper()
	procs := processor.Default()
	for name, fn := range stages.TestProcs {
		require.NoError(tb, procs.Register(name, fn))
	}
	cfg.Processors = procs
	d := testdaemon.Start(tb, cfg)
	return d, stages.Dial(tb, d.Addr().String())
}

// slotOf reads key's cached state: its expiry deadline, and whether it is cached at all.
func slotOf(tb testing.TB, d *daemon.Daemon, key string) (expireAt int64, cached bool) {
	tb.Helper()
	expireAt, cached, err := d.Pipeline().Cache.Cached(pctest.Context(tb), key)
	require.NoError(tb, err)
	return expireAt, cached
}

// TestExecWritesLikeASetAndReadsLikeAGet: a processor's Set is a new version, durable (it
// survives a restart), pushed to subscribers with its value; Unchanged is no version and no
// push; Delete is a delete; a cold key is loaded before the processor runs (read-through).
func TestExecWritesLikeASetAndReadsLikeAGet(t *testing.T) {
	dir := t.TempDir()
	d, c := startExecDaemon(t, daemon.Config{Store: dir})
	ctx := pctest.Context(t)
	sub, err := c.Subscribe(ctx, "k", client.WithValues())
	require.NoError(t, err)

	res, v1, err := c.Exec(ctx, "k", "put", []byte("one"))
	require.NoError(t, err)
	assert.Equal(t, "(none)", string(res), "the processor saw no value")
	ev := <-sub.C
	assert.Equal(t, client.Event{Kind: client.EventSet, Key: "k", Version: v1, Value: []byte("one"), Seq: ev.Seq}, ev)

	res, v, err := c.Exec(ctx, "k", "peek", nil)
	require.NoError(t, err)
	assert.Equal(t, "one", string(res))
	assert.Equal(t, v1, v, "unchanged: the version the key has")
	v2, err := c.Set(ctx, "k", []byte("two"))
	require.NoError(t, err)
	ev = <-sub.C
	assert.Equal(t, v2, ev.Version, "the unchanged exec pushed nothing: the next push is the set's")

	res, v3, err := c.Exec(ctx, "k", "put", []byte("three"))
	require.NoError(t, err)
	assert.Equal(t, "two", string(res))
	assert.Greater(t, v3, v2)
	<-sub.C

	require.NoError(t, d.Stop(ctx))
	d, c = startExecDaemon(t, daemon.Config{Store: dir})
	loads := d.Pipeline().Cache.Stats().Loads
	res, v, err = c.Exec(ctx, "k", "peek", nil)
	require.NoError(t, err)
	assert.Equal(t, "three", string(res), "a cold key is read through from the store, where the write was durable")
	assert.Equal(t, v3, v)
	assert.Equal(t, loads+1, d.Pipeline().Cache.Stats().Loads)

	res, v4, err := c.Exec(ctx, "k", "drop", nil)
	require.NoError(t, err)
	assert.Equal(t, "dropped", string(res))
	assert.Greater(t, v4, v3)
	_, err = c.Get(ctx, "k")
	assert.ErrorIs(t, err, client.ErrNotFound)
	res, v, err = c.Exec(ctx, "k", "drop", nil)
	require.NoError(t, err, "deleting what is not there is unchanged, not an error")
	assert.Equal(t, "dropped", string(res))
	assert.Zero(t, v, "no key, no version")
	st := d.Pipeline().Cache.Stats()
	assert.Equal(t, uint64(3), st.Execs)
	assert.Equal(t, uint64(1), st.Deletes)
}

// TestExecKeepsTheTTL: a processor's Set keeps the key's TTL, as incr does; a key a processor
// creates has none.
func TestExecKeepsTheTTL(t *testing.T) {
	d, c := startExecDaemon(t, daemon.Config{})
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "ttl", []byte("a"), client.WithTTL(time.Hour))
	require.NoError(t, err)
	before, _ := slotOf(t, d, "ttl")
	require.NotZero(t, before)
	_, _, err = c.Exec(ctx, "ttl", "put", []byte("b"))
	require.NoError(t, err)
	after, _ := slotOf(t, d, "ttl")
	assert.Equal(t, before, after)

	_, _, err = c.Exec(ctx, "fresh", "put", []byte("b"))
	require.NoError(t, err)
	at, cached := slotOf(t, d, "fresh")
	assert.True(t, cached)
	assert.Zero(t, at, "a key made by a processor never expires")
}

// TestExecErrorsChangeNothing: whatever the error, the key keeps its value and version, and
// the error's code says what went wrong.
func TestExecErrorsChangeNothing(t *testing.T) {
	// The time budget is wall-clock: a loaded machine can pre-empt the loop thread past any
	// short one. So only the case about it runs under one (1 ms, and a processor that runs for
	// 2 ms: over it however slow the machine); the others run with none.
	d, c := startExecDaemon(t, daemon.Config{
		MaxValue: 4096,
		Cache:    stages.CacheConfig{ProcMaxSteps: 100, ProcBudget: -1},
	})
	timed, tc := startExecDaemon(t, daemon.Config{Cache: stages.CacheConfig{ProcBudget: time.Millisecond}})
	ctx := pctest.Context(t)
	v, err := c.Set(ctx, "k", []byte("plain"))
	require.NoError(t, err)
	tv, err := tc.Set(ctx, "k", []byte("plain"))
	require.NoError(t, err)
	size := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	tests := []struct {
		name, proc string
		args       []byte
		want       error
		counted    func(stages.CacheStats) uint64
		timed      bool // on the daemon with a time budget
	}{
		{"unknown processor", "nope", nil, client.ErrUnknownProcessor, func(s stages.CacheStats) uint64 { return s.ExecUnknown }, false},
		{"bad arguments", "steps", []byte("many"), client.ErrBadRequest, func(s stages.CacheStats) uint64 { return s.ExecBadArgs }, false},
		{"a value it cannot read", "zset", processor.ZIncrArgs("m", 1), client.ErrWrongType, func(s stages.CacheStats) uint64 { return s.ExecWrongType }, false},
		{"a panic", "boom", nil, client.ErrInternal, func(s stages.CacheStats) uint64 { return s.ExecInternal }, false},
		{"over the step budget", "steps", []byte("101"), client.ErrOverBudget, func(s stages.CacheStats) uint64 { return s.ExecOverBudget }, false},
		{"over the time budget", "slow", []byte("2ms"), client.ErrOverBudget, func(s stages.CacheStats) uint64 { return s.ExecOverBudget }, true},
		{"a value over -max-value", "grow", size(4097), client.ErrTooLarge, func(s stages.CacheStats) uint64 { return s.ExecTooLarge }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, c, v := d, c, v
			if tt.timed {
				d, c, v = timed, tc, tv
			}
			before := tt.counted(d.Pipeline().Cache.Stats())
			_, _, err := c.Exec(ctx, "k", tt.proc, tt.args)
			assert.ErrorIs(t, err, tt.want)
			t.Log(err)
			assert.Equal(t, before+1, tt.counted(d.Pipeline().Cache.Stats()), "counted by kind")
			it, err := c.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, "plain", string(it.Value))
			assert.Equal(t, v, it.Version)
		})
	}
	_, _, err = c.Exec(ctx, "k", "steps", []byte("100"))
	assert.NoError(t, err, "a budget is reached, not passed")
	_, _, err = c.Exec(ctx, "k", "grow", size(4096))
	assert.NoError(t, err, "a value of -max-value fits")
	assert.Zero(t, d.Panics(), "a processor's panic is not the loop's")
}

// TestExecOfAnUnknownProcessorLoadsNothing: a junk name is refused before the key is looked
// up, so it never reaches the store nor leaves an entry.
func TestExecOfAnUnknownProcessorLoadsNothing(t *testing.T) {
	d, c := startExecDaemon(t, daemon.Config{})
	ctx := pctest.Context(t)
	_, _, err := c.Exec(ctx, "cold", "nope", nil)
	require.ErrorIs(t, err, client.ErrUnknownProcessor)
	assert.ErrorContains(t, err, "hash", "the message lists the processors there are")
	assert.Zero(t, d.Pipeline().Cache.Stats().Loads)
	_, cached := slotOf(t, d, "cold")
	assert.False(t, cached)
}

// TestExecRefusedWhileTheFeedIsBehind: with a shared store whose change feed is incomplete the
// cached value may be stale, and a processor would compute on it: refused, nothing ran.
func TestExecRefusedWhileTheFeedIsBehind(t *testing.T) {
	d, c := startExecDaemon(t, daemon.Config{})
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "k", []byte("v"))
	require.NoError(t, err)
	setDown := func(down bool) {
		require.NoError(t, d.Pipeline().Cache.SetFeedDown(ctx, down))
	}
	setDown(true)
	_, _, err = c.Exec(ctx, "k", "put", []byte("w"))
	assert.ErrorIs(t, err, client.ErrUnavailable)
	setDown(false)
	res, _, err := c.Exec(ctx, "k", "put", []byte("w"))
	require.NoError(t, err)
	assert.Equal(t, "v", string(res), "the refused exec changed nothing")
}
