package stages_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
)

// These tests run the stages as package daemon wires them (export_test.go says why they are
// in their own package, and what they reach inside the stages for).

// TestStopRunsInPipelineOrder: Stop finishes the stages in pipeline order, each closing the
// queues it feeds when it is done, so that the stage nearest the store finishes first among
// those that hold work and Incoming, which sends the last replies, last; and every write
// acknowledged while it stops is in the store.
func TestStopRunsInPipelineOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	t.Cleanup(stages.SetStageFinished(func(stage string) { mu.Lock(); order = append(order, stage); mu.Unlock() }))

	dir := t.TempDir()
	d := testdaemon.Start(t, daemon.Config{Store: dir})
	c := stages.Dial(t, d.Addr().String())
	ctx := pctest.Context(t)
	var acked sync.Map
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d:%d", g, i)
				if _, err := c.Set(ctx, key, []byte("v")); err != nil {
					return // the daemon stopped under it
				}
				acked.Store(key, true)
			}
		})
	}
	pctest.WaitFor(t, func() bool { n := 0; acked.Range(func(any, any) bool { n++; return n < 200 }); return n >= 200 }, "no writes")
	stopCtx, cancel := context.WithTimeout(context.Background(), pctest.Timeout)
	defer cancel()
	require.NoError(t, d.Stop(stopCtx))
	c.Close()
	wg.Wait()
	assert.Equal(t, []string{"outgoing", "cacheprc", "sessionmgr", "incoming"}, order)

	store, err := nameservice.Open(dir)
	require.NoError(t, err)
	defer store.Close()
	lost := 0
	acked.Range(func(k, _ any) bool {
		if _, ok, _ := store.Get(k.(string), 0); !ok {
			lost++
		}
		return true
	})
	assert.Zero(t, lost, "acknowledged writes missing from the store")
}

// TestPanickingHandlerLeavesNoKeyWedged: a handler that panics on one key answers that request
// (internal), every request waiting on the key, and leaves the key usable and every other key
// untouched, whether it panics on a hot key, while a cold key loads, or inside an mget.
func TestPanickingHandlerLeavesNoKeyWedged(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{})
	cache := d.Pipeline().Cache
	c := stages.Dial(t, d.Addr().String())
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "hot", []byte("1"))
	require.NoError(t, err)
	_, err = c.Set(ctx, "bystander", []byte("b"))
	require.NoError(t, err)

	setHook := func(fn func(key string)) {
		var hook func(*task.Task)
		if fn != nil {
			hook = func(tk *task.Task) { fn(string(tk.Key)) }
		}
		require.NoError(t, cache.SetTestHook(ctx, hook))
	}
	setHook(func(key string) {
		if key == "hot" || key == "cold" {
			panic("boom on " + key)
		}
	})
	_, err = c.Get(ctx, "hot")
	assert.ErrorIs(t, err, client.ErrInternal, "a request whose handler panicked is answered")
	_, err = c.Get(ctx, "cold") // panics in the load's completion, when the get resumes
	assert.ErrorIs(t, err, client.ErrInternal)
	_, err = c.MGet(ctx, "bystander", "hot", "cold", "other")
	assert.ErrorIs(t, err, client.ErrInternal, "an mget with a panicking key is answered")
	it, err := c.Get(ctx, "bystander")
	require.NoError(t, err, "other keys are untouched")
	assert.Equal(t, "b", string(it.Value))

	setHook(nil)
	for _, key := range []string{"hot", "cold"} {
		_, err = c.Set(ctx, key, []byte("again"))
		require.NoError(t, err, "%s is not wedged", key)
		it, err = c.Get(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, "again", string(it.Value))
	}
	assert.Equal(t, uint64(4), cache.Loop().Stats().Panics)
}
