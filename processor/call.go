package processor

import (
	"fmt"
	"runtime/debug"
	"time"
)

// DefaultMaxValue is the largest new value when Limits.MaxValue is not set: pipecached's
// default -max-value.
const DefaultMaxValue = 1 << 20

// Limits bound one processor call. The stage builds them from its configuration.
type Limits struct {
	// MaxValue is the largest new value, in bytes (the daemon's -max-value); <= 0 means
	// DefaultMaxValue. A longer value fails the call with ErrTooLarge.
	MaxValue int
	// MaxResult is the largest result, in bytes (at most what a reply frame can carry);
	// <= 0 means MaxValue. A longer result fails the call with ErrTooLarge.
	MaxResult int
	// MaxSteps is the step budget (see Output.Charge); 0 means none. The built-ins charge one
	// step per entry they read, compare, copy or write, before doing the work, so a call over
	// budget is refused early.
	MaxSteps int64
	// MaxTime is the time budget; 0 means none. A processor cannot be pre-empted on the loop,
	// so the budget is checked after the call returns: a call that took longer fails with
	// ErrOverBudget and changes nothing, but the loop was held for all of it meanwhile. It
	// makes a slow processor visible as failures instead of a slow daemon; it does not protect
	// the loop from a processor that never returns.
	MaxTime time.Duration
}

// Stats is what one call cost, for the stage's metrics.
type Stats struct {
	Elapsed time.Duration // wall time of the processor's run, by the monotonic clock
	Steps   int64         // steps it charged (Output.Charge)
}

// Call runs fn on in, within lim, and leaves its outcome in out. On success out.Action,
// out.Value and out.Result say what to do (a Delete of a key that does not exist comes back
// as Unchanged; Value is empty unless the action is Set). On an error, whatever fn did, out
// says Unchanged with an empty Value and Result, and the error says why:
//
//   - fn returned an error: that error (KindOf gives its kind);
//   - fn panicked: a *PanicError (KindInternal);
//   - the new value or the result is over lim: ErrTooLarge;
//   - the call charged more steps than lim.MaxSteps or took more than lim.MaxTime:
//     ErrOverBudget.
//
// The Stats are returned in every case. out.Value and out.Result stay valid until the next
// Call with out; they may alias in.Value, so copy them before changing the key's cached value.
// Call itself allocates nothing once out's buffers have grown to the sizes the calls need.
func Call(fn Func, in Input, lim Limits, out *Output) (Stats, error) {
	out.begin(lim)
	start := time.Now()
	err := run(fn, in, out)
	st := Stats{Elapsed: time.Since(start), Steps: out.steps}
	out.grow()
	if err == nil {
		err = out.check(lim, st)
	}
	if err != nil {
		out.reset()
		return st, err
	}
	if out.Action == Delete && !in.Exists {
		out.Action = Unchanged
	}
	if out.Action != Set {
		out.Value = out.value[:0]
	}
	return st, nil
}

// run calls fn, recovering a panic into a *PanicError.
func run(fn Func, in Input, out *Output) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(in, out)
}

// begin prepares out for a call: its limits, no steps, empty buffers.
func (o *Output) begin(lim Limits) {
	o.maxValue = lim.MaxValue
	if o.maxValue <= 0 {
		o.maxValue = DefaultMaxValue
	}
	o.maxResult = lim.MaxResult
	if o.maxResult <= 0 {
		o.maxResult = o.maxValue
	}
	o.maxSteps, o.steps = lim.MaxSteps, 0
	o.reset()
}

// grow makes Call's own buffers as large as what the processor just produced (up to the
// limits), so the next call of the same size appends without allocating. The processor's
// slices are never adopted: Call cannot tell a buffer that append grew from a slice the
// processor keeps for itself.
func (o *Output) grow() {
	o.value = regrow(o.value, len(o.Value), o.maxValue)
	o.result = regrow(o.result, len(o.Result), o.maxResult)
}

func (o *Output) reset() {
	o.Action, o.Value, o.Result = Unchanged, o.value[:0], o.result[:0]
}

// regrow returns buf, or a larger buffer when the last call needed more than its capacity
// (never more than limit, past which the call failed anyway).
func regrow(buf []byte, used, limit int) []byte {
	used = min(used, limit)
	if used <= cap(buf) {
		return buf
	}
	return make([]byte, 0, used)
}

// check applies the limits to a call that returned no error.
func (o *Output) check(lim Limits, st Stats) error {
	switch {
	case o.Action > Delete:
		return fmt.Errorf("%w: processor returned %v", ErrInternal, o.Action)
	case o.Action == Set && len(o.Value) > o.maxValue:
		return tooLarge("new value of %d bytes over the limit of %d", len(o.Value), o.maxValue)
	case len(o.Result) > o.maxResult:
		return tooLarge("result of %d bytes over the limit of %d", len(o.Result), o.maxResult)
	case o.maxSteps > 0 && o.steps > o.maxSteps:
		return &budgetError{steps: o.steps, limit: o.maxSteps}
	case lim.MaxTime > 0 && st.Elapsed > lim.MaxTime:
		return fmt.Errorf("%w: took %v, over the budget of %v", ErrOverBudget, st.Elapsed, lim.MaxTime)
	}
	return nil
}
