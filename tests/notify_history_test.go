package tests

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/stages"
)

// TestNotificationHistoryUnderLossAndCuts runs a randomized workload of sets on 20 keys while
// the subscriber sits behind a relay that loses, duplicates and reorders 10% of datagrams each
// way and is cut off completely several times (long enough to abandon its conversation). The
// history checker then requires, for every key, that the subscriber saw exactly the versions the
// key went through, in order, except where it received a resync, after which it re-read the key
// and continued from the version it read: never a silent gap, never a version out of order.
func TestNotificationHistoryUnderLossAndCuts(t *testing.T) {
	const keys, writes, cuts = 20, 600, 4
	d := startInProcess(t, stages.DaemonConfig{Sessions: stages.SessionConfig{ReplayWindow: 256, LeaseBeats: 100}})
	ctx := testCtx(t)
	relay := newPausableRelay(t, d.Addr().String(), 0.10)
	sub, err := client.Dial(relay.addr(), client.WithHeartbeat(50*time.Millisecond, 400*time.Millisecond),
		client.WithDialTimeout(testTimeout))
	require.NoError(t, err)
	defer sub.Close()
	reader := dialT(t, d.Addr().String()) // re-reads after a resync, over a clean path
	s, err := sub.Subscribe(ctx, "h:", client.Prefix(), client.Buffer(1<<16))
	require.NoError(t, err)

	// Writers: two goroutines, random keys; every acknowledged version is part of the history.
	committed := make([][]uint64, keys) // per key, versions in commit order
	var mu sync.Mutex
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range 2 {
		c := dialT(t, d.Addr().String())
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range writes / 2 {
				k := rng.IntN(keys)
				// Hold the lock across the write so that per key, acknowledgment order is
				// commit order (two writers could otherwise ack the same key out of order).
				mu.Lock()
				v, err := c.Set(ctx, fmt.Sprint("h:", k), []byte(fmt.Sprint(w, "/", i)))
				if err == nil {
					committed[k] = append(committed[k], v)
				}
				mu.Unlock()
				require.NoError(t, err)
				done.Add(1)
			}
		})
	}
	// Cuts: several times, cut the subscriber off until it gives its conversation up.
	wg.Go(func() {
		for i := range cuts {
			waitUntil(t, func() bool { return done.Load() >= int64((i+1)*writes/(cuts+1)) }, "writers stalled")
			relay.pause(true)
			waitUntil(t, func() bool { return !sub.Connected() }, "subscriber never noticed the cut")
			relay.pause(false)
		}
	})

	// The subscriber: per key, what it has seen since its last resync, and where it started.
	seen := make([][]uint64, keys)
	base := make([]uint64, keys) // version read after the last resync (0: from the start)
	resyncs := 0
	last := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		out := make([]uint64, keys)
		for k := range keys {
			if n := len(committed[k]); n > 0 {
				out[k] = committed[k][n-1]
			}
		}
		return out
	}
	caughtUp := func() bool {
		final := last()
		for k := range keys {
			cur := base[k]
			if n := len(seen[k]); n > 0 {
				cur = seen[k][n-1]
			}
			if cur != final[k] {
				return false
			}
		}
		return true
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	finished := false
	for !finished {
		select {
		case ev, ok := <-s.C:
			require.True(t, ok)
			if ev.Kind == client.EventResync {
				resyncs++
				for k := range keys { // act on it: re-read every key
					it, err := reader.Get(ctx, fmt.Sprint("h:", k))
					if err == nil {
						base[k], seen[k] = it.Version, nil
					}
				}
				continue
			}
			var k int
			fmt.Sscanf(ev.Key, "h:%d", &k)
			if n := len(seen[k]); n > 0 {
				require.Greater(t, ev.Version, seen[k][n-1], "key %s: a duplicate or out-of-order event", ev.Key)
			} else if ev.Version <= base[k] {
				continue // older than what the re-read after a resync showed: stale, and recognisably so
			}
			seen[k] = append(seen[k], ev.Version)
		case <-writersDone:
			writersDone = nil
		case <-time.After(100 * time.Millisecond):
		}
		if writersDone == nil && caughtUp() {
			finished = true
		}
	}

	// The history check.
	for k := range keys {
		var want []uint64
		for _, v := range committed[k] {
			if v > base[k] {
				want = append(want, v)
			}
		}
		require.Equal(t, want, seen[k], "key h:%d: the subscriber's history has a gap or is out of order (base %d)", k, base[k])
	}
	st := d.SessionStats()
	t.Logf("%d writes, %d cuts, %d resyncs acted on, server resyncs %d, pushes dropped %d", writes, cuts, resyncs, st.Resyncs, st.PushesDropped)
}
