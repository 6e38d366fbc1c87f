package loop

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a latency histogram written by one goroutine (a stage's loop) and read by any:
// powers-of-two buckets from 1 µs to about 4.2 s, so that putting a value in costs a bit count
// and two atomic additions, no lock, no search, no allocation. A monitoring scrape reads a
// snapshot (Snapshot) and turns it into its own format (package admin: Prometheus).
//
// Observe belongs to the one writer; Snapshot is safe for concurrent use.
type Histogram struct {
	counts [HistogramBuckets]atomic.Uint64
	sumNs  atomic.Uint64
}

// HistogramBuckets is how many buckets a Histogram has: bucket i counts values up to
// BucketBound(i), the last one everything above.
const HistogramBuckets = 24

// BucketBound returns the upper bound of bucket i: 2^i µs for i < HistogramBuckets-1; the last
// bucket has none (it returns 0).
func BucketBound(i int) time.Duration {
	if i >= HistogramBuckets-1 {
		return 0
	}
	return time.Duration(1<<i) * time.Microsecond
}

// Observe adds one value, in nanoseconds (a negative one, from clocks read on different
// threads, counts as 0). One writer only.
func (h *Histogram) Observe(ns int64) {
	ns = max(ns, 0)
	h.counts[bucketOf(ns)].Add(1)
	h.sumNs.Add(uint64(ns))
}

// bucketOf returns the bucket of ns: the smallest i with ns <= 2^i µs.
func bucketOf(ns int64) int {
	us := (uint64(ns) + 999) / 1000 // round up: 1.5 µs is over the 1 µs bound
	if us <= 1 {
		return 0
	}
	return min(bits.Len64(us-1), HistogramBuckets-1)
}

// HistogramSnapshot is a Histogram's counts at one moment.
type HistogramSnapshot struct {
	Counts [HistogramBuckets]uint64 // per bucket, not cumulative
	Sum    time.Duration
}

// Count returns how many values were observed.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Snapshot reads the histogram. Safe for concurrent use; a value observed meanwhile may be in
// its bucket and not yet in the sum.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range s.Counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sumNs.Load())
	return s
}
