package tests

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// TestNearCacheServesLocallyAndFollowsChanges: a second get is served locally; a write by
// another client refreshes the entry by push; a delete drops it; the client reads its own
// writes at once.
func TestNearCacheServesLocallyAndFollowsChanges(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	ctx := pctest.Context(t)
	c, err := dial(d.Addr().String(), client.WithNearCache(100, time.Hour)) // staleness: not under test here
	require.NoError(t, err)
	defer c.Close()
	other := dialT(t, d.Addr().String())
	nearSynced(t, c)

	v1, err := other.Set(ctx, "n", []byte("one"))
	require.NoError(t, err)
	it, err := c.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, "one", string(it.Value))
	it, err = c.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, v1, it.Version)
	assert.Equal(t, uint64(1), c.NearCacheStats().Hits, "the second get is local")

	v2, err := other.Set(ctx, "n", []byte("two"))
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { it, err := c.Get(ctx, "n"); return err == nil && it.Version == v2 }, "the change never reached the near cache")
	assert.Positive(t, c.NearCacheStats().Refreshed, "the pushed value refreshed the entry")

	v3, err := c.Set(ctx, "n", []byte("mine"))
	require.NoError(t, err)
	it, err = c.Get(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, v3, it.Version, "a client reads its own write at once")

	require.NoError(t, other.Delete(ctx, "n"))
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "n"); return err != nil }, "the delete never reached the near cache")
	assert.ErrorIs(t, func() error { _, err := c.Get(ctx, "n"); return err }(), client.ErrNotFound)
}

// TestNearCacheIsBoundedAndUnsubscribesWhatItEvicts: reading 50 keys through a 10-entry near
// cache leaves 10 entries and 10 subscriptions on the server, and an evicted key is read anew.
func TestNearCacheIsBoundedAndUnsubscribesWhatItEvicts(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	ctx := pctest.Context(t)
	setKeys(t, d, 50)
	c, err := dial(d.Addr().String(), client.WithNearCache(10, time.Hour))
	require.NoError(t, err)
	defer c.Close()
	nearSynced(t, c)
	for i := range 50 {
		_, err := c.Get(ctx, fmt.Sprint("key", i))
		require.NoError(t, err)
	}
	st := c.NearCacheStats()
	assert.Equal(t, 10, st.Entries)
	assert.Equal(t, uint64(40), st.Evicted)
	pctest.WaitFor(t, func() bool { return d.SessionStats().Subscriptions == 10 }, "evicted keys stay subscribed on the server")
	_, err = c.Get(ctx, "key0")
	require.NoError(t, err)
	assert.Equal(t, uint64(0), c.NearCacheStats().Hits, "an evicted key is read from the server")
}

// TestNearCacheStopsServingWhenTheStreamIsNotConfirmed: cut off from the server, the near
// cache stops answering once maxStale has passed since the push stream was last confirmed
// complete, instead of serving values that may be stale.
func TestNearCacheStopsServingWhenTheStreamIsNotConfirmed(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{LeaseBeats: 1000}})
	ctx := pctest.Context(t)
	setKeys(t, d, 1)
	relay := newPausableRelay(t, d.Addr().String(), 0)
	const maxStale = 150 * time.Millisecond
	c, err := client.Dial(relay.addr(), client.WithNearCache(10, maxStale), client.WithHeartbeat(20*time.Millisecond, time.Hour))
	require.NoError(t, err)
	defer c.Close()
	nearSynced(t, c)
	_, err = c.Get(ctx, "key0")
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { c.Get(ctx, "key0"); return c.NearCacheStats().Hits > 0 }, "never served locally")

	relay.pause(true)
	time.Sleep(2 * maxStale)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Get(short, "key0")
	assert.ErrorIs(t, err, client.ErrTimeout, "served from the near cache although the stream was not confirmed for %v", 2*maxStale)
	assert.Positive(t, c.NearCacheStats().Stale)

	relay.pause(false)
	hits := c.NearCacheStats().Hits
	pctest.WaitFor(t, func() bool { c.Get(ctx, "key0"); return c.NearCacheStats().Hits > hits }, "never served locally again")
}

// nearSynced waits until c's near cache has had its first heartbeat confirmation.
func nearSynced(t *testing.T, c *client.Client) {
	t.Helper()
	pctest.WaitFor(t, func() bool { return c.NearCacheStats().Synced }, "the near cache was never confirmed")
}

// setKeys writes key0..key<n-1> through a plain client.
func setKeys(t *testing.T, d *pipecached.Daemon, n int) {
	t.Helper()
	c := dialT(t, d.Addr().String())
	for i := range n {
		_, err := c.Set(pctest.Context(t), fmt.Sprint("key", i), []byte("v"))
		require.NoError(t, err)
	}
}

// TestNearCacheReadsItsOwnWritesAmongOthers: a client with a near cache writes a key that
// another client keeps writing, then reads it: the read is never older than its own write,
// whatever order the other writes' pushes and its own write's reply arrive in.
func TestNearCacheReadsItsOwnWritesAmongOthers(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	ctx := pctest.Context(t)
	c, err := dial(d.Addr().String(), client.WithNearCache(100, time.Hour)) // staleness: not under test
	require.NoError(t, err)
	defer c.Close()
	nearSynced(t, c)
	other := dialT(t, d.Addr().String())
	var otherAcked atomic.Uint64 // the version of the other client's last acknowledged write
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v, err := other.Set(ctx, "hot", fmt.Append(nil, i))
			if err != nil {
				t.Errorf("the other writer: %v", err)
				return
			}
			otherAcked.Store(v)
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 300 {
		if _, err := c.Get(ctx, "hot"); err != nil && !errors.Is(err, client.ErrNotFound) {
			require.NoError(t, err)
		}
		var mine uint64
		before := otherAcked.Load()
		switch i % 3 {
		case 0:
			mine, err = c.Set(ctx, "hot", fmt.Append(nil, i))
		case 1:
			_, err = c.Incr(ctx, "hot", 1)
			if errors.Is(err, client.ErrNotFound) {
				continue // deleted, not written again yet
			}
		case 2:
			err = c.Delete(ctx, "hot")
			if errors.Is(err, client.ErrNotFound) {
				continue
			}
		}
		require.NoError(t, err, "write %d", i)
		it, err := c.Get(ctx, "hot")
		if errors.Is(err, client.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		// Every version the other client had acknowledged before this write is older than it.
		require.Greater(t, it.Version, before, "read %d: older than its own write", i)
		require.GreaterOrEqual(t, it.Version, mine, "read %d: older than its own write", i)
	}
}
