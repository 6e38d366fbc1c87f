package client

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKickerRunsAfterEveryKickOneAtATime: however kicks race with a run that is finishing, fn
// starts after the last kick (no kick is lost), and never runs twice at once.
func TestKickerRunsAfterEveryKickOneAtATime(t *testing.T) {
	const goroutines, kicks = 8, 2000
	var (
		k                 kicker
		kicked, seen      atomic.Int64
		inside, maxInside atomic.Int32
	)
	k.fn = func() {
		n := inside.Add(1)
		for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
		}
		seen.Store(kicked.Load())
		inside.Add(-1)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range kicks {
				kicked.Add(1)
				if (g+i)%2 == 0 {
					k.kick()
				} else {
					k.kickHere()
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for seen.Load() != goroutines*kicks || k.running.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("fn last saw %d kicks of %d (running %v): a kick was lost", seen.Load(), goroutines*kicks, k.running.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if m := maxInside.Load(); m != 1 {
		t.Errorf("fn ran %d at once", m)
	}
}
