package stages

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMeasuringARequestAllocatesNothing: what Incoming's loop does per reply to count it
// allocates nothing and takes no lock (atomic additions only).
func TestMeasuringARequestAllocatesNothing(t *testing.T) {
	var r requestStats
	assert.Zero(t, testing.AllocsPerRun(1000, func() { r.observe(3, 1, 123456) }))
}

// BenchmarkRequestStatsObserve: what counting one reply costs Incoming's loop (a duration in
// its op's histogram, a reply in its op-and-code counter).
func BenchmarkRequestStatsObserve(b *testing.B) {
	var r requestStats
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.observe(3, 0, int64(i&0xfffff))
	}
}
