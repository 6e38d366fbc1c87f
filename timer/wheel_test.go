package timer

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms = int64(time.Millisecond)

func TestWheelFiresInDeadlineOrder(t *testing.T) {
	w := NewWheel(time.Millisecond, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	deadlines := make([]int64, n)
	timers := make([]Timer, n)
	var fired []int64
	for i := range timers {
		// Spread across every level: from 0 to ~3 days, in ms.
		deadlines[i] = rng.Int64N(1<<rng.IntN(28)) * ms
		d := deadlines[i]
		timers[i].Fn = func() { fired = append(fired, d) }
		w.Schedule(&timers[i], d)
	}
	require.Equal(t, n, w.Len())

	now := int64(0)
	for w.Len() > 0 {
		next, ok := w.NextDeadline()
		require.True(t, ok)
		require.GreaterOrEqual(t, next, now, "next deadline went backwards")
		now = next + rng.Int64N(3)*ms // wake a little late sometimes, as a loop does
		before := len(fired)
		w.Advance(now)
		for _, d := range fired[before:] {
			require.LessOrEqual(t, d, now, "timer fired before its deadline")
		}
	}
	require.Len(t, fired, n)
	assert.True(t, slices.IsSorted(fired), "timers fired out of deadline order")
}

// TestWheelAgainstModel drives the wheel and a trivial model with the same random schedules,
// cancels and reschedules, with callbacks that schedule further timers, and checks after every
// advance that exactly the due timers fired and nothing else is lost or left behind.
func TestWheelAgainstModel(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		w := NewWheel(time.Millisecond, 5*ms)
		const n, extra = 500, 50
		timers := make([]Timer, n+extra)
		model := map[int]int64{} // timer index -> deadline tick
		fired := map[int]int64{} // timer index -> tick it fired in (by the model's clock)
		now := int64(5 * ms)
		nextTick := now / ms // the first tick the wheel has not processed
		for i := range timers {
			timers[i].Fn = func() {
				fired[i] = model[i]
				delete(model, i)
				if i%7 == 0 && i < n { // a callback that schedules one of the extra timers
					j := n + i%extra
					at := now + rng.Int64N(5000)*ms
					w.Schedule(&timers[j], at)
					model[j] = (at + ms - 1) / ms
				}
			}
		}
		for step := 0; step < 400; step++ {
			for range 5 {
				i := rng.IntN(n)
				_, scheduled := model[i]
				switch rng.IntN(4) {
				case 0:
					require.Equal(t, scheduled, w.Cancel(&timers[i]))
					delete(model, i)
				default:
					at := now + rng.Int64N(1<<rng.IntN(22))*ms
					w.Schedule(&timers[i], at)
					model[i] = max((at+ms-1)/ms, nextTick)
				}
			}
			now += rng.Int64N(1 << rng.IntN(16))
			due := map[int]bool{}
			for i, d := range model {
				if d <= now/ms {
					due[i] = true
				}
			}
			clear(fired)
			w.Advance(now)
			nextTick = now/ms + 1
			for i := range due {
				require.Contains(t, fired, i, "seed %d step %d: timer %d due, not fired by tick %d", seed, step, i, now/ms)
			}
			for i, d := range fired {
				require.LessOrEqual(t, d, now/ms, "seed %d step %d: timer %d fired early", seed, step, i)
			}
			require.Equal(t, len(model), w.Len(), "seed %d step %d", seed, step)
		}
	}
}

func TestWheelCancel(t *testing.T) {
	w := NewWheel(time.Millisecond, 0)
	var a, b Timer
	ran := ""
	a.Fn = func() { ran += "a" }
	b.Fn = func() { ran += "b"; w.Cancel(&a) } // cancels a timer due in the same tick
	w.Schedule(&b, 10*ms)
	w.Schedule(&a, 10*ms)
	assert.True(t, a.Scheduled())
	w.Advance(10 * ms)
	assert.Equal(t, "b", ran)
	assert.False(t, a.Scheduled())
	assert.False(t, w.Cancel(&a), "cancelling twice reports false")
	assert.Equal(t, 0, w.Len())
	_, ok := w.NextDeadline()
	assert.False(t, ok)
}

func TestWheelNeverEarlyAndPastDeadlines(t *testing.T) {
	w := NewWheel(time.Millisecond, 100*ms)
	var tm Timer
	fired := false
	tm.Fn = func() { fired = true }
	w.Schedule(&tm, 100*ms+1) // 1 ns past a tick boundary rounds up
	w.Advance(100 * ms)
	assert.False(t, fired)
	w.Advance(101 * ms)
	assert.True(t, fired)

	fired = false
	w.Schedule(&tm, 0) // in the past: fires on the next tick
	next, ok := w.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, 102*ms, next)
	w.Advance(102 * ms)
	assert.True(t, fired)
}

func TestWheelCallbackSchedulingSameTickFiresNextTick(t *testing.T) {
	w := NewWheel(time.Millisecond, 0)
	var a, b Timer
	var order []string
	b.Fn = func() { order = append(order, "b") }
	a.Fn = func() { order = append(order, "a"); w.Schedule(&b, 0); w.Schedule(&a, 64*ms+10*ms) }
	w.Schedule(&a, 10*ms)
	w.Advance(10 * ms)
	assert.Equal(t, []string{"a"}, order, "a timer scheduled from a callback must not run in the same tick")
	w.Advance(11 * ms)
	assert.Equal(t, []string{"a", "b"}, order)
	w.Advance(73 * ms)
	assert.Equal(t, []string{"a", "b"}, order, "a timer one rotation ahead must not fire early")
	w.Advance(74 * ms)
	assert.Equal(t, []string{"a", "b", "a"}, order)
}

func TestWheelClampsBeyondHorizon(t *testing.T) {
	w := NewWheel(time.Millisecond, 0)
	var tm Timer
	tm.Fn = func() {}
	w.Schedule(&tm, int64(maxSpan+1000)*ms)
	next, ok := w.NextDeadline()
	require.True(t, ok)
	assert.LessOrEqual(t, next, int64(maxSpan)*ms)
}

// TestWheelMillionTimersCost checks the cost the design promises, by counting work rather than
// timing it: a million timers spread over a day are each moved at most levels-1 times, and
// advancing through all of them visits each exactly once.
func TestWheelMillionTimersCost(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	w := NewWheel(time.Millisecond, 0)
	rng := rand.New(rand.NewPCG(7, 7))
	timers := make([]Timer, n)
	fired := 0
	for i := range timers {
		timers[i].Fn = func() { fired++ }
		w.Schedule(&timers[i], rng.Int64N(int64(24*time.Hour)))
	}
	// Cancel and reschedule a tenth: O(1) each, no leftovers.
	for i := 0; i < n; i += 10 {
		require.True(t, w.Cancel(&timers[i]))
		w.Schedule(&timers[i], rng.Int64N(int64(24*time.Hour)))
	}
	steps := 0
	for w.Len() > 0 {
		next, _ := w.NextDeadline()
		w.Advance(next)
		steps++
	}
	st := w.Stats()
	assert.Equal(t, n, fired)
	assert.Equal(t, uint64(n), st.Fired)
	assert.LessOrEqual(t, st.Cascaded, uint64(n*(wheelLevels-1)), "a timer moved more than levels-1 times")
	// One wake-up per distinct deadline tick at most, plus one per cascade point: far fewer than
	// the 86.4M ticks of the day.
	assert.Less(t, steps, 2*86_400_000/64+n)
	t.Logf("%d timers: %d cascades (%.2f per timer), %d advances", n, st.Cascaded, float64(st.Cascaded)/float64(n), steps)
}

// TestWheelCascadesAtAnUnprocessedRotationBoundary: a wheel left standing on a rotation
// boundary (an Advance that ended just before it) must still cascade there when a level-0
// timer is due later in that rotation; it used to skip the cascade, and the cascaded timers
// fired a whole level-1 rotation late (4 s with 1 ms ticks).
func TestWheelCascadesAtAnUnprocessedRotationBoundary(t *testing.T) {
	w := NewWheel(time.Millisecond, 0)
	var now int64
	firedAt := int64(-1)
	var late, early Timer
	late.Fn = func() { firedAt = now }
	early.Fn = func() {}
	w.Schedule(&late, 100*ms) // level 1 from tick 10: cascades at tick 64
	w.Advance(10 * ms)
	w.Advance(63 * ms)        // the wheel now stands at tick 64, not processed yet
	w.Schedule(&early, 69*ms) // level 0, later in the rotation tick 64 begins
	for now = 64 * ms; now <= 10_000*ms && firedAt < 0; now += ms {
		next, ok := w.NextDeadline()
		require.True(t, ok)
		require.LessOrEqual(t, next, 100*ms, "NextDeadline is past the late timer's deadline")
		w.Advance(now)
	}
	assert.Equal(t, 100*ms, firedAt)
}
