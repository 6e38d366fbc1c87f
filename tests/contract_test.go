package tests

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// The data ops' corners where PROTOCOL.md was silent or wrong (#23 items 8, 9): each as the
// document now states it.

// TestContractCASIncrTouch: cas on a key that expired is not_found (1), as on one that never
// existed, and version_mismatch (3) only for a key at another version; incr reads a counter as
// strconv.ParseInt does ("+7" and "007" are 7) and writes it back canonical; a touch is pushed
// as a set at the key's unchanged version.
func TestContractCASIncrTouch(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	v, err := c.Set(ctx, "cas", []byte("a"), client.WithTTL(time.Millisecond))
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "cas"); return errors.Is(err, client.ErrNotFound) }, "the key never expired")
	_, err = c.CAS(ctx, "cas", []byte("b"), v)
	assert.ErrorIs(t, err, client.ErrNotFound, "cas of an expired key, naming its last version")
	_, err = c.CAS(ctx, "never", []byte("b"), 1)
	assert.ErrorIs(t, err, client.ErrNotFound)
	v, err = c.Set(ctx, "cas", []byte("a"))
	require.NoError(t, err)
	_, err = c.CAS(ctx, "cas", []byte("b"), v+100)
	assert.ErrorIs(t, err, client.ErrVersionMismatch)

	for in, want := range map[string]int64{"+7": 8, "007": 8, "-0": 1} {
		_, err := c.Set(ctx, "n", []byte(in))
		require.NoError(t, err)
		n, err := c.Incr(ctx, "n", 1)
		require.NoError(t, err, "incr of %q", in)
		assert.Equal(t, want, n, "incr of %q", in)
		it, err := c.Get(ctx, "n")
		require.NoError(t, err)
		assert.Equal(t, itoa(int(want)), string(it.Value), "written back canonical")
	}
	for _, bad := range []string{" 7", "7 ", "1e3", "0x10", "++7", ""} {
		_, err := c.Set(ctx, "n", []byte(bad))
		require.NoError(t, err)
		_, err = c.Incr(ctx, "n", 1)
		assert.ErrorIs(t, err, client.ErrNotCounter, "incr of %q", bad)
	}

	v, err = c.Set(ctx, "touched", []byte("x"))
	require.NoError(t, err)
	sub, err := c.Subscribe(ctx, "touched", client.WithValues())
	require.NoError(t, err)
	require.NoError(t, c.Touch(ctx, "touched", time.Hour))
	select {
	case ev := <-sub.C:
		assert.Equal(t, client.EventSet, ev.Kind)
		assert.Equal(t, v, ev.Version, "a touch keeps the version")
		assert.Equal(t, "x", string(ev.Value))
	case <-ctx.Done():
		t.Fatal("a touch was not pushed")
	}
}

// TestContractCounters: what the stats counters count, as PROTOCOL.md defines them: gets every
// read of a key that reached the cache (after its load, if it needed one), split into hits and
// negative_hits; misses the loads from the store, one per key however many requests wait; execs
// the exec requests that reached the cache, not those Incoming refused.
func TestContractCounters(t *testing.T) {
	dir := t.TempDir()
	d := testdaemon.Start(t, pipecached.Config{Store: dir})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "k", []byte("v")) // a blind set: no load
	require.NoError(t, err)
	require.NoError(t, d.Stop(ctx)) // the cache forgets, the store keeps
	d = testdaemon.Start(t, pipecached.Config{Store: dir})
	c = dialT(t, d.Addr().String())

	_, err = c.Get(ctx, "k") // a miss, then a hit
	require.NoError(t, err)
	_, err = c.Get(ctx, "k") // a hit
	require.NoError(t, err)
	_, err = c.Get(ctx, "absent") // a miss, then a negative hit
	assert.ErrorIs(t, err, client.ErrNotFound)
	_, err = c.Get(ctx, "absent") // a negative hit
	assert.ErrorIs(t, err, client.ErrNotFound)
	_, cs := d.Stats()
	assert.Equal(t, uint64(4), cs.Gets, "gets")
	assert.Equal(t, uint64(2), cs.Hits, "hits")
	assert.Equal(t, uint64(2), cs.NegativeHits, "negative_hits")
	assert.Equal(t, uint64(2), cs.Misses, "misses")

	r := dialRawConn(t, d.Addr().String())
	r.hello("")
	h, _ := r.call(wire.Header{Op: task.OpExec, ID: 1, Key: []byte("k")}, nil) // no proc: refused by Incoming
	assert.Equal(t, task.CodeBadRequest, h.Code)
	_, _, err = c.Exec(ctx, "k", "nosuch", nil) // refused by the cache
	assert.ErrorIs(t, err, client.ErrUnknownProcessor)
	_, cs = d.Stats()
	assert.Equal(t, uint64(1), cs.Execs, "execs")
	assert.Equal(t, uint64(1), cs.ExecUnknown, "exec_unknown_processor")
}

// TestContractMaxValueHoldsDataOnly: -max-value bounds the values the cache keeps or returns,
// not a hello's (padded to 200 bytes, PROTOCOL.md) nor one an op ignores: a server started
// with a small -max-value still lets clients in.
func TestContractMaxValueHoldsDataOnly(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{MaxValue: 64})
	c := dialT(t, d.Addr().String()) // its hello's value is over 64 bytes
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "k", make([]byte, 64))
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", make([]byte, 65))
	assert.ErrorIs(t, err, client.ErrTooLarge)

	r := dialRawConn(t, d.Addr().String())
	r.hello("")
	h, _ := r.call(wire.Header{Op: task.OpPing, ID: 2}, make([]byte, 1000)) // a value ping ignores
	assert.Equal(t, task.CodeOK, h.Code, h.Msg)
	h, _ = r.call(wire.Header{Op: task.OpEcho, ID: 3}, make([]byte, 65))
	assert.Equal(t, task.CodeTooLarge, h.Code, h.Msg)
}
