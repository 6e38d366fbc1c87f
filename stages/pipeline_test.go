package stages_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// These tests run the stages as package daemon wires them (export_test.go says why they are
// in their own package, and what they reach inside the stages for).

// TestStopRunsInPipelineOrder: Stop finishes the stages in pipeline order, each closing the
// queues it feeds when it is done, so that the stage nearest the store finishes first among
// those that hold work and Incoming, which sends the last replies, last; and every write
// acknowledged while it stops is in the store. So in every mapping of stages to loops: where a
// stage hands its last tasks to a stage of its own loop, it must do so without waiting.
func TestStopRunsInPipelineOrder(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) { testStopRunsInPipelineOrder(t, threads) })
	}
}

func testStopRunsInPipelineOrder(t *testing.T, threads int) {
	var mu sync.Mutex
	var order []string
	t.Cleanup(stages.SetStageFinished(func(stage string) { mu.Lock(); order = append(order, stage); mu.Unlock() }))

	dir := t.TempDir()
	d := testdaemon.Start(t, daemon.Config{Store: dir, Threads: threads})
	assert.Len(t, d.Pipeline().Mapping, min(threads, 4))
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
	assert.Equal(t, uint64(4), cache.Stage().Stats().Panics)
}

// TestOneLoopHandsOffWithoutWakeUps: with -threads 1 every stage is on one loop, so a hand-off
// between two stages (Incoming -> CachePrc or SessionMgr -> Incoming, CachePrc -> Outgoing) is a
// push the same iteration drains: no queue between stages is ever signalled. Only the queue that
// Outgoing's store goroutines feed (CachePrc's completions) wakes the loop. With -threads 4 the
// same traffic crosses threads, and CachePrc's requests wake its loop: the counter measures.
func TestOneLoopHandsOffWithoutWakeUps(t *testing.T) {
	for _, threads := range []int{1, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			d := testdaemon.Start(t, daemon.Config{Threads: threads})
			c := stages.Dial(t, d.Addr().String())
			ctx := pctest.Context(t)
			sub, err := c.Subscribe(ctx, "watched")
			require.NoError(t, err)
			for i := range 100 {
				key := fmt.Sprintf("k%d", i%10)
				_, err := c.Set(ctx, key, []byte("v"))
				require.NoError(t, err)
				_, err = c.Get(ctx, key)
				require.NoError(t, err)
				_, err = c.Get(ctx, fmt.Sprintf("absent%d", i)) // a load: Outgoing's goroutines
				require.ErrorIs(t, err, client.ErrNotFound)
			}
			_, err = c.Set(ctx, "watched", []byte("x")) // an event: CachePrc -> SessionMgr -> Incoming
			require.NoError(t, err)
			select {
			case <-sub.C:
			case <-ctx.Done():
				t.Fatal("no push for the watched key")
			}
			p := d.Pipeline()
			wakeups := map[string]uint64{}
			for _, st := range []*loop.Stage{p.Incoming.Stage(), p.Sessions.Stage(), p.Cache.Stage(), p.Outgoing.Stage()} {
				for _, q := range st.Stats().Queues {
					wakeups[q.Name] = q.Wakeups
				}
			}
			between := []string{"incoming.replies", "sessionmgr.requests", "cacheprc.requests", "outgoing.requests"}
			if threads == 1 {
				for _, q := range between {
					assert.Zero(t, wakeups[q], "%s: a hand-off within the one loop wrote its eventfd", q)
				}
				return
			}
			assert.Positive(t, wakeups["cacheprc.requests"], "four loops: Incoming woke CachePrc's loop")
		})
	}
}

// TestCommitterStaysOnItsThread: the committer runs every group commit on one OS thread, its
// own, whatever the mapping: it never migrates between threads from one commit to the next
// (nor runs on a loop's).
func TestCommitterStaysOnItsThread(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			var mu sync.Mutex
			tids := map[int]int{}
			t.Cleanup(stages.SetCommitted(func() { mu.Lock(); tids[unix.Gettid()]++; mu.Unlock() }))
			d := testdaemon.Start(t, daemon.Config{Threads: threads})
			c := stages.Dial(t, d.Addr().String())
			ctx := pctest.Context(t)
			var wg sync.WaitGroup
			for g := range 4 { // several writers: commits of one write and of many
				wg.Go(func() {
					for i := range 50 {
						_, err := c.Set(ctx, fmt.Sprintf("k%d:%d", g, i), []byte("v"))
						assert.NoError(t, err)
					}
				})
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			commits := 0
			for _, n := range tids {
				commits += n
			}
			assert.Positive(t, commits)
			assert.Len(t, tids, 1, "%d commits ran on these threads (tid: commits): %v", commits, tids)
		})
	}
}
