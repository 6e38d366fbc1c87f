package timer

import (
	"sync/atomic"
	"time"
)

// epoch is the shared origin of every Clock, so that readings taken by different stages can be
// subtracted (per-stage latency of a task).
var epoch = time.Now()

// Clock is a cached clock: its owner calls Refresh once per loop wake-up, and every reader in that
// iteration sees the same instant without a system call. Readings are monotonic nanoseconds
// since process start, shared by all Clocks.
//
// Refresh belongs to the owning loop; Nanos may be read from any goroutine (for stats).
type Clock struct {
	nanos atomic.Int64
}

// NewClock returns a clock already refreshed.
func NewClock() *Clock {
	c := new(Clock)
	c.Refresh()
	return c
}

// Refresh reads the real clock once and caches it. It returns the new reading.
func (c *Clock) Refresh() int64 {
	n := Now()
	c.nanos.Store(n)
	return n
}

// Nanos returns the cached reading: nanoseconds since process start.
func (c *Clock) Nanos() int64 { return c.nanos.Load() }

// Time returns the cached reading as a wall-clock time.
func (c *Clock) Time() time.Time { return epoch.Add(time.Duration(c.nanos.Load())) }

// Now reads the real clock (monotonic, nanoseconds since process start), uncached. Use it where
// a stage's cached clock is not at hand, for example in another goroutine.
func Now() int64 { return int64(time.Since(epoch)) }
