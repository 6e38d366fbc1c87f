package timer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkWheel measures schedule and cancel with 1k and 1M timers already scheduled (spread
// over an hour, 1 ms ticks): "schedule+cancel" arms and disarms one more timer; "reschedule"
// moves an existing timer, as a heartbeat reset does.
func BenchmarkWheel(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		w := NewWheel(time.Millisecond, 0)
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		timers := make([]Timer, n)
		for i := range timers {
			timers[i].Fn = func() {}
			w.Schedule(&timers[i], rng.Int64N(int64(time.Hour)))
		}
		at := make([]int64, 4096)
		for i := range at {
			at[i] = rng.Int64N(int64(time.Hour))
		}
		b.Run(fmt.Sprintf("schedule+cancel/entries=%d", n), func(b *testing.B) {
			var t Timer
			t.Fn = func() {}
			b.ReportAllocs()
			for i := range b.N {
				w.Schedule(&t, at[i&4095])
				w.Cancel(&t)
			}
		})
		b.Run(fmt.Sprintf("reschedule/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				w.Schedule(&timers[i%n], at[i&4095])
			}
		})
	}
}
