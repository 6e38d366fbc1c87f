package timer

import (
	"math"
	"math/bits"
	"time"
)

// The wheel has wheelLevels levels of 64 buckets. Level k holds timers due in [64^k, 64^(k+1))
// ticks; when the level below wraps, one bucket of level k is cascaded down. A timer is moved at
// most wheelLevels-1 times in its life, so the amortised cost per timer is O(1) however many are
// scheduled. With 1 ms ticks the horizon is 64^6 ms, about 795 days; later deadlines are clamped.
const (
	levelBits   = 6
	levelSlots  = 1 << levelBits
	levelMask   = levelSlots - 1
	wheelLevels = 6
	maxSpan     = uint64(1)<<(levelBits*wheelLevels) - 1
)

// Timer is one scheduled callback. Embed it in the object it times (a session, a conversation, a
// request) and set Fn once; scheduling and cancelling then allocate nothing.
type Timer struct {
	// Fn is called by Wheel.Advance on the wheel's loop goroutine when the timer expires.
	Fn func()

	at         uint64 // deadline, in ticks
	prev, next *Timer
	b          *bucket // nil when not scheduled
}

// Scheduled reports whether t is waiting to fire.
func (t *Timer) Scheduled() bool { return t.b != nil }

type bucket struct {
	head, tail *Timer
	level      uint8
	slot       uint8
}

// WheelStats counts what a wheel has done; Cascaded is the work the hierarchy costs.
type WheelStats struct {
	Scheduled, Cancelled, Fired, Cascaded uint64
}

// Wheel is a hierarchical timing wheel driven by a cached clock. Schedule, Cancel and the
// per-tick work are O(1); NextDeadline is O(levels), so the loop can sleep exactly until the
// next timer is due.
//
// Order: timers fire in order of their deadline tick; timers due in the same tick fire in the
// order they reached the bottom level (schedule order, unless one of them was cascaded).
//
// A Wheel is owned by one loop goroutine and is not safe for concurrent use.
type Wheel struct {
	tickNs int64
	now    uint64 // next tick to process; every tick before it has been processed
	count  int
	occ    [wheelLevels]uint64 // bit s of occ[k] set when buckets[k][s] is non-empty
	levels [wheelLevels][levelSlots]bucket
	stats  WheelStats
}

// NewWheel returns a wheel with the given tick (1 ms if tick <= 0) whose time starts at startNs
// (a Clock reading).
func NewWheel(tick time.Duration, startNs int64) *Wheel {
	if tick <= 0 {
		tick = time.Millisecond
	}
	w := &Wheel{tickNs: int64(tick), now: uint64(max(startNs, 0) / int64(tick))}
	for k := range w.levels {
		for s := range w.levels[k] {
			w.levels[k][s] = bucket{level: uint8(k), slot: uint8(s)}
		}
	}
	return w
}

// Len returns the number of scheduled timers.
func (w *Wheel) Len() int { return w.count }

// Stats returns the wheel's counters.
func (w *Wheel) Stats() WheelStats { return w.stats }

// Schedule arms t to fire at atNs (a Clock reading), never before it and at most one tick after
// it has passed on the driving clock. A timer already scheduled is moved.
func (w *Wheel) Schedule(t *Timer, atNs int64) {
	if t.b != nil {
		w.unlink(t)
	}
	if atNs < 0 {
		atNs = 0
	}
	// Round up: a timer must never fire early.
	t.at = uint64((atNs + w.tickNs - 1) / w.tickNs)
	w.insert(t)
	w.count++
	w.stats.Scheduled++
}

// Cancel disarms t. It reports whether t was scheduled.
func (w *Wheel) Cancel(t *Timer) bool {
	if t.b == nil {
		return false
	}
	w.unlink(t)
	w.stats.Cancelled++
	return true
}

func (w *Wheel) insert(t *Timer) {
	if t.at < w.now {
		t.at = w.now
	}
	diff := t.at - w.now
	if diff > maxSpan {
		diff = maxSpan
		t.at = w.now + maxSpan
	}
	level := 0
	for diff >= 1<<(levelBits*(level+1)) {
		level++
	}
	slot := (t.at >> (levelBits * level)) & levelMask
	b := &w.levels[level][slot]
	t.b, t.next, t.prev = b, nil, b.tail
	if b.tail != nil {
		b.tail.next = t
	} else {
		b.head = t
		w.occ[level] |= 1 << slot
	}
	b.tail = t
}

func (w *Wheel) unlink(t *Timer) {
	b := t.b
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		b.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		b.tail = t.prev
	}
	if b.head == nil {
		w.occ[b.level] &^= 1 << b.slot
	}
	t.b, t.prev, t.next = nil, nil, nil
	w.count--
}

// Advance runs every timer due at or before nowNs, in deadline order, and returns how many ran.
// Callbacks may schedule and cancel timers (a timer scheduled for a time already past fires on
// the next tick, not in this call's current tick).
func (w *Wheel) Advance(nowNs int64) int {
	if nowNs < 0 {
		return 0
	}
	target := uint64(nowNs / w.tickNs)
	fired := w.stats.Fired
	for w.now <= target {
		next := w.nextEvent()
		if next > target {
			w.now = target + 1
			break
		}
		w.now = next
		w.processTick()
	}
	return int(w.stats.Fired - fired)
}

// processTick cascades what the tick w.now brings down and fires the timers due in it.
func (w *Wheel) processTick() {
	tick := w.now
	if tick&levelMask == 0 {
		for k := 1; k < wheelLevels; k++ {
			idx := (tick >> (levelBits * k)) & levelMask
			w.cascade(k, idx)
			if idx != 0 {
				break
			}
		}
	}
	w.now = tick + 1 // timers scheduled by callbacks below land in later ticks
	b := &w.levels[0][tick&levelMask]
	for b.head != nil && b.head.at <= tick {
		t := b.head
		w.unlink(t)
		w.stats.Fired++
		t.Fn()
	}
}

// cascade moves every timer of levels[k][idx] down to the level its remaining time calls for.
func (w *Wheel) cascade(k int, idx uint64) {
	b := &w.levels[k][idx]
	t := b.head
	if t == nil {
		return
	}
	b.head, b.tail = nil, nil
	w.occ[k] &^= 1 << idx
	for t != nil {
		next := t.next
		w.insert(t)
		w.stats.Cascaded++
		t = next
	}
}

// nextEvent returns the first tick at or after w.now at which a bucket fires (level 0) or
// cascades (higher levels), or MaxUint64 if nothing is scheduled.
func (w *Wheel) nextEvent() uint64 {
	if w.count == 0 {
		return math.MaxUint64
	}
	best := uint64(math.MaxUint64)
	for k := 0; k < wheelLevels; k++ {
		if w.occ[k] == 0 {
			continue
		}
		shift := uint(levelBits * k)
		span := uint64(1) << shift
		base := (w.now + span - 1) >> shift << shift // first tick >= now where level k acts
		j := bits.TrailingZeros64(bits.RotateLeft64(w.occ[k], -int((base>>shift)&levelMask)))
		if at := base + uint64(j)<<shift; at < best {
			best = at
		}
		if k == 0 {
			// Later levels act only at a rotation boundary: a level-0 slot before the first
			// boundary at or after now comes first. (now itself may be that boundary, not yet
			// processed: then its cascade comes first, whatever level 0 holds.)
			if best < (w.now+levelMask)&^levelMask {
				return best
			}
		}
	}
	return best
}

// NextDeadline returns when the wheel next needs Advance (a Clock reading) and true, or false if
// no timer is scheduled. It may be earlier than the next timer's deadline (a cascade), never
// later.
func (w *Wheel) NextDeadline() (int64, bool) {
	next := w.nextEvent()
	if next == math.MaxUint64 {
		return 0, false
	}
	return int64(next) * w.tickNs, true
}
