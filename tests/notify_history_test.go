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
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// TestNotificationHistoryUnderLossAndCuts runs a randomized workload of sets on 20 keys while
// the subscriber sits behind a relay that loses, duplicates and reorders 10% of datagrams each
// way and is cut off completely several times (long enough to abandon its conversation). The
// history checker then requires, for every key, that the subscriber saw exactly the versions the
// key went through, in order, except where a push said it was coalesced (versions skipped
// because the subscriber was behind) or where it received a resync, after which it re-read the
// key and continued from the version it read: never a silent gap, never a version out of order.
//
// A near-cache client behind the same kind of relay reads the keys meanwhile; every value it
// returns must be at least as new as the newest version acknowledged before the read began
// minus the near cache's staleness bound.
func TestNotificationHistoryUnderLossAndCuts(t *testing.T) {
	const keys, writes, cuts = 20, 600, 4
	// A push window of 32 makes the subscriber fall behind now and then, so coalescing is part
	// of the history too.
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{ReplayWindow: 256, PushWindow: 32, LeaseBeats: 100}})
	ctx := pctest.Context(t)
	relay := newPausableRelay(t, d.Addr().String(), 0.10)
	sub, err := client.Dial(relay.addr(), client.WithHeartbeat(50*time.Millisecond, 400*time.Millisecond),
		client.WithDialTimeout(pctest.Timeout))
	require.NoError(t, err)
	defer sub.Close()
	reader := dialT(t, d.Addr().String()) // re-reads after a resync, over a clean path
	s, err := sub.Subscribe(ctx, "h:", client.Prefix(), client.Buffer(1<<16))
	require.NoError(t, err)

	var done atomic.Int64 // writes acknowledged

	// The near-cache reader, behind its own lossy relay, cut off with the subscriber.
	const maxStale = 300 * time.Millisecond
	nearRelay := newPausableRelay(t, d.Addr().String(), 0.10)
	near, err := client.Dial(nearRelay.addr(), client.WithNearCache(keys, maxStale),
		client.WithHeartbeat(50*time.Millisecond, 400*time.Millisecond), client.WithDialTimeout(pctest.Timeout))
	require.NoError(t, err)
	defer near.Close()
	type read struct {
		key     int
		start   time.Time
		version uint64
	}
	var reads []read
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		rng := rand.New(rand.NewPCG(3, 9))
		// Until the writers are done, and at least one read was a hit (the check below proves
		// nothing otherwise): on a slow machine the stream may be confirmed only now and then.
		for (done.Load() < writes || len(reads) < 100 || near.NearCacheStats().Hits == 0) && ctx.Err() == nil {
			k := rng.IntN(keys)
			start := time.Now()
			it, err := near.Get(ctx, fmt.Sprint("h:", k))
			if err == nil {
				reads = append(reads, read{k, start, it.Version})
			}
			time.Sleep(time.Millisecond)
		}
	}()

	// Writers: two goroutines, random keys; every acknowledged version is part of the history.
	committed := make([][]uint64, keys)  // per key, versions in commit order
	ackedAt := make([][]time.Time, keys) // per key, when each was acknowledged
	var mu sync.Mutex
	var wg sync.WaitGroup
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
					ackedAt[k] = append(ackedAt[k], time.Now())
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
			pctest.WaitFor(t, func() bool { return done.Load() >= int64((i+1)*writes/(cuts+1)) }, "writers stalled")
			relay.pause(true)
			nearRelay.pause(true)
			pctest.WaitFor(t, func() bool { return !sub.Connected() }, "subscriber never noticed the cut")
			relay.pause(false)
			nearRelay.pause(false)
		}
	})

	// The subscriber: per key, what it has seen since its last resync, and where it started.
	seen := make([][]uint64, keys)
	skipped := make([]map[uint64]bool, keys) // per key, versions pushed as coalesced
	for k := range skipped {
		skipped[k] = map[uint64]bool{}
	}
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
			if ev.Coalesced {
				skipped[k][ev.Version] = true
			}
		case <-writersDone:
			writersDone = nil
		case <-time.After(100 * time.Millisecond):
		}
		if writersDone == nil && caughtUp() {
			finished = true
		}
	}

	// The history check: what was seen is what was committed, except that a coalesced push
	// stands for the versions before it that were not pushed.
	coalesced := 0
	for k := range keys {
		var want []uint64
		for _, v := range committed[k] {
			if v > base[k] {
				want = append(want, v)
			}
		}
		var got []uint64
		i := 0
		for _, v := range seen[k] {
			for skipped[k][v] && i < len(want) && want[i] < v {
				i++ // announced as skipped
				coalesced++
			}
			if i < len(want) {
				got = append(got, want[i])
				i++
			}
		}
		got = append(got, want[i:]...)
		require.Equal(t, got, seen[k], "key h:%d: the subscriber's history has a gap or is out of order (base %d)", k, base[k])
	}
	st := d.SessionStats()
	t.Logf("%d writes, %d cuts, %d resyncs acted on, %d versions coalesced; server: resyncs %d, held %d, coalesced %d, pushes dropped %d",
		writes, cuts, resyncs, coalesced, st.Resyncs, st.Held, st.Coalesced, st.PushesDropped)

	// The near cache's check: no read older than the newest version acknowledged maxStale
	// before it began.
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reads {
		var floor uint64
		for j, at := range ackedAt[r.key] {
			if at.Before(r.start.Add(-maxStale)) {
				floor = committed[r.key][j]
			}
		}
		require.GreaterOrEqual(t, r.version, floor, "near cache returned h:%d at version %d, older than %d acknowledged over %v before the read",
			r.key, r.version, floor, maxStale)
	}
	ns := near.NearCacheStats()
	t.Logf("near cache: %d reads checked, %+v", len(reads), ns)
	require.Positive(t, ns.Hits, "the near cache never served a read: the check above proved nothing")
}
