package tests

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestFrozenSubscribersCostBoundedMemory: subscribers that stop reading and acknowledging
// hold at most their byte budget of values; beyond it their pushes go without values (flagged),
// and the writer beside them is never refused.
func TestFrozenSubscribersCostBoundedMemory(t *testing.T) {
	const perSession = 1 << 20
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{PushBytes: perSession}})
	for range 4 {
		frozen := dialRawConn(t, d.Addr().String())
		frozen.hello("")
		h, _ := frozen.call(wire.Header{Op: task.OpSubscribe, ID: 2, Flags: task.FlagPrefix | task.FlagWithValue}, nil)
		require.Equal(t, task.CodeOK, h.Code, h.Msg)
		// From now on it reads nothing and acknowledges nothing.
	}
	w := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	value := make([]byte, 256<<10)
	peak := int64(0)
	for i := range 100 {
		_, err := w.Set(ctx, fmt.Sprintf("big:%d", i%10), value)
		require.NoError(t, err, "the writer is refused because of others' backlog")
		peak = max(peak, d.SessionStats().PushBytes)
	}
	assert.LessOrEqual(t, peak, int64(4*perSession), "values held for four frozen subscribers")
	// SessionMgr pushes the changes when its loop gets to them, maybe after the last reply.
	pctest.WaitFor(t, func() bool { return d.SessionStats().ValuesDropped > 0 }, "pushes beyond the budget never went without values")
	assert.LessOrEqual(t, d.SessionStats().PushBytes, int64(4*perSession), "values held for four frozen subscribers")
}

// TestValuelessPushSaysSo: a subscriber with values that gets a set without one is told, and
// a subscriber that keeps up beside it still gets every value.
func TestValuelessPushSaysSo(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{PushBytes: 1 << 20}})
	frozen := dialRawConn(t, d.Addr().String())
	frozen.hello("")
	frozen.call(wire.Header{Op: task.OpSubscribe, ID: 2, Key: []byte("k"), Flags: task.FlagWithValue}, nil)
	fast := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	sub, err := fast.Subscribe(ctx, "k", client.WithValues())
	require.NoError(t, err)
	w := dialT(t, d.Addr().String())
	for range 10 {
		_, err := w.Set(ctx, "k", make([]byte, 200<<10))
		require.NoError(t, err)
		ev := next(t, sub) // in step: this subscriber keeps up (and acknowledges by bytes)
		assert.False(t, ev.NoValue)
		assert.Len(t, ev.Value, 200<<10)
	}
	// The frozen one: the first five fit its budget, the rest say they have no value.
	var withValue, without int
	for range 10 {
		h, v := frozen.next()
		require.Equal(t, task.OpPush, h.Op)
		if h.Flags&task.PushNoValue != 0 {
			without++
			assert.Empty(t, v)
		} else {
			withValue++
			assert.Len(t, v, 200<<10)
		}
	}
	assert.Equal(t, 5, withValue)
	assert.Equal(t, 5, without)
}

// TestSubscriptionsPerSessionAreCapped: past the cap a subscribe is refused with code limit;
// subscribing again to a key already held is not a new subscription.
func TestSubscriptionsPerSessionAreCapped(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{MaxSubscriptions: 5}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	for i := range 5 {
		_, err := c.Subscribe(ctx, fmt.Sprint("k", i))
		require.NoError(t, err)
	}
	_, err := c.Subscribe(ctx, "k5")
	assert.ErrorIs(t, err, client.ErrLimit)
	_, err = c.Subscribe(ctx, "k0")
	assert.NoError(t, err, "the same key again")
}

// TestManyPrefixesMatchOnlyTheirKeys: prefix matching by the lengths of the subscribed prefixes
// finds every match, and only matches, among thousands of prefixes.
func TestManyPrefixesMatchOnlyTheirKeys(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{MaxSubscriptions: 30_000}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range 20_000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.Subscribe(ctx, fmt.Sprintf("room:%05d:", i), client.Prefix())
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	watcher := dialT(t, d.Addr().String())
	sub, err := watcher.Subscribe(ctx, "room:", client.Prefix())
	require.NoError(t, err)
	_, err = c.Set(ctx, "room:00042:alice", []byte("x"))
	require.NoError(t, err)
	ev := next(t, sub)
	assert.Equal(t, "room:00042:alice", ev.Key)
	assert.Equal(t, int64(20_001), d.SessionStats().Subscriptions)
}
