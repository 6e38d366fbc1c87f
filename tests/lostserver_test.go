package tests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
)

// TestStoppedServerIsUnavailableAtOnce: a long-lived client whose server stops says so
// (ErrUnavailable, "connection refused") without waiting for its calls' contexts to end, and
// goes on redialling in the background: once a server listens at the address again, calls
// succeed on the same Client.
func TestStoppedServerIsUnavailableAtOnce(t *testing.T) {
	dir := t.TempDir()
	d := testdaemon.Start(t, pipecached.Config{Store: dir})
	addr := d.Addr().String()
	c := dialT(t, addr)
	ctx := pctest.Context(t) // a minute: a call that waits for it fails the test with ErrTimeout
	_, err := c.Set(ctx, "k", []byte("v"))
	require.NoError(t, err)
	require.NoError(t, d.Stop(ctx))

	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"get (read: sent again on a new session)", func() error { _, err := c.Get(ctx, "k"); return err }},
		{"set (write: never sent again)", func() error { _, err := c.Set(ctx, "k", []byte("w")); return err }},
		{"ping", func() error { return c.Ping(ctx) }},
	} {
		err := call.do()
		require.ErrorIs(t, err, client.ErrUnavailable, call.name)
		assert.NotErrorIs(t, err, client.ErrTimeout, "%s: waited for its context", call.name)
		assert.NoError(t, ctx.Err(), call.name)
		t.Logf("%s: %v", call.name, err)
	}
	err = c.Ping(ctx)
	assert.ErrorContains(t, err, "refused", "the error says why")
	assert.ErrorContains(t, err, "retrying in the background")

	cfg := pipecached.Config{Store: dir}
	cfg.Incoming.Transport.Addr = addr
	back, err := pipecached.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { back.Stop(context.Background()) })
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "k"); return err == nil }, "the client never came back to the restarted server")
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
}

// TestSilentServerIsUnavailable: a call to a server that has gone silent (every datagram lost,
// no ICMP error either: a host gone, a network cut) fails with ErrUnavailable once nothing at
// all has been heard for WithUnreachableAfter (1 s by default), not when its context ends;
// the session survives a cut shorter than its lease.
func TestSilentServerIsUnavailable(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	relay := newPausableRelay(t, d.Addr().String(), 0)
	c, err := dial(relay.addr(), client.WithUnreachableAfter(time.Second)) // the SDK's default
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	require.NoError(t, c.Ping(ctx))
	session := c.Session()

	relay.pause(true)
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, client.ErrUnavailable)
	assert.NotErrorIs(t, err, client.ErrTimeout, "waited for its context")
	assert.ErrorContains(t, err, "nothing heard from the server")
	assert.NoError(t, ctx.Err())

	relay.pause(false)
	pctest.WaitFor(t, func() bool { return c.Ping(ctx) == nil }, "no call succeeded after the cut")
	assert.Equal(t, session, c.Session(), "the session survived the cut")
}

// TestSlowServerIsNotUnreachable: a call whose request its server acknowledged (the server is
// alive, its store slow) waits for its reply, however long past WithUnreachableAfter: the
// silence that fails a call counts every datagram, not replies only.
func TestSlowServerIsNotUnreachable(t *testing.T) {
	bolt, err := nameservice.Open(t.TempDir())
	require.NoError(t, err)
	store := &slowStore{Store: bolt}
	d := testdaemon.Start(t, pipecached.Config{OwnStore: store})
	c, err := client.Dial(d.Addr().String(), client.WithUnreachableAfter(20*time.Millisecond),
		client.WithHeartbeat(time.Hour, time.Hour)) // no heartbeat reply meanwhile either
	require.NoError(t, err)
	defer c.Close()
	store.delay.Store(int64(500 * time.Millisecond)) // 25 times WithUnreachableAfter
	_, err = c.Set(pctest.Context(t), "slow", []byte("v"))
	require.NoError(t, err)
}
