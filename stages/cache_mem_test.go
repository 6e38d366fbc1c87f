package stages

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCacheMemory fills CachePrc's own structures (not started: the benchmark goroutine
// plays the loop) with N entries of 100-byte values and reports what one item costs and what a
// full garbage collection of that heap takes.
//
//	go test -run XXX -bench CacheMemory -benchtime 1x ./stages/
func BenchmarkCacheMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			for range b.N {
				benchCacheMemory(b, n)
			}
		})
	}
}

func benchCacheMemory(b *testing.B, n int) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := NewCachePrc(CacheConfig{Memory: 1 << 40}, 0)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	key := make([]byte, 0, 32)
	for i := range n {
		key = strconv.AppendInt(append(key[:0], "user:"...), int64(i), 10)
		c.setValue(c.newSlot(key), value, uint64(i+1), 0)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-bytes/item")

	// A forced full collection: its wall time is what the mark phase costs for this heap
	// (in production the collector runs concurrently, taking this much CPU from the loops).
	var gcs debug.GCStats
	t0 := time.Now()
	runtime.GC()
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "full-gc-ms")
	debug.ReadGCStats(&gcs)
	if len(gcs.Pause) > 0 {
		b.ReportMetric(float64(gcs.Pause[0].Microseconds()), "last-pause-µs")
	}
	runtime.KeepAlive(c)
	c.loop.Stop(b.Context())
}
