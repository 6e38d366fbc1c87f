package processor

import (
	"strconv"
	"time"
)

// Func is a processor: it reads the key's current value and the caller's arguments from in,
// and says in out what becomes of the key (out.Action, out.Value) and what the caller gets
// (out.Result). It returns nil, or an error wrapping one of the kinds (ErrBadArgs,
// ErrWrongType, ErrTooLarge, ErrOverBudget); on an error nothing changes, whatever out says.
//
// A Func runs on a stage's event loop, which serves every other client meanwhile, and it
// cannot be pre-empted. So it must:
//
//   - compute only: no I/O (files, network, logging to a blocking writer), no system calls,
//     no locks or channels, no sleeping, no goroutines (they would outlive the call);
//   - finish quickly: work in proportion to the value and the arguments, and for large inputs
//     call out.Charge so a step budget can refuse a call before it does its work;
//   - treat in.Value, in.Args and in.Key as read-only and not keep them after it returns
//     (they point into the cache's memory and the request);
//   - depend only on in (and on immutable data of its own): the same Func may run on several
//     loops at once for different keys, and the stage gives no other synchronisation.
//
// A panic is recovered by Call into a PanicError and the key is left unchanged, but a stack
// overflow, running out of memory or a concurrent map write are fatal errors in Go, not
// panics: they end the daemon.
type Func func(in Input, out *Output) error

// Input is what a processor reads. Its slices are read-only and valid only during the call.
type Input struct {
	Key    []byte    // the key the processor runs on
	Value  []byte    // the key's current value; nil when !Exists
	Exists bool      // whether the key exists (an empty value exists)
	Args   []byte    // the caller's arguments, raw (the built-ins use the encoding of codec.go)
	Now    time.Time // the loop's cached clock when the call began
}

// Action is what a processor does to its key.
type Action uint8

// The actions. Unchanged is the zero value.
const (
	Unchanged Action = iota // the key keeps its value and its version; only Result goes back
	Set                     // the key's value becomes Output.Value: a new version, pushed like a set
	Delete                  // the key is deleted (Unchanged if it did not exist)
)

var actionNames = [...]string{"unchanged", "set", "delete"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(?)"
}

// Output is what a processor produces, and the working state of one call. The stage keeps
// one Output per loop and passes it to every Call; it is not safe for concurrent use.
//
// Call hands Value and Result in empty, with spare capacity left by earlier calls: append to
// them. A processor may also point them at a slice of its own (even at in.Value); Call never
// writes into a slice it did not hand out. After Call they are valid until the next Call with
// the same Output.
type Output struct {
	Action Action // Unchanged unless the processor says otherwise
	Value  []byte // the new value, when Action is Set (may be empty)
	Result []byte // what the caller gets back, whatever the action

	value, result []byte // the buffers Call owns and hands out
	maxValue      int    // Limits.MaxValue of the call
	maxResult     int    // Limits.MaxResult of the call
	maxSteps      int64  // Limits.MaxSteps of the call; 0: no limit
	steps         int64  // steps charged so far
}

// Charge counts n steps of work against the call's step budget (Limits.MaxSteps) and returns
// an error wrapping ErrOverBudget once the call has taken more steps than the budget; return
// it. Charge before the work, so that a call over budget is refused before it does it. What a
// step is is up to the processor; the built-ins count one per entry they read, compare, copy
// or write. On an Output that was never passed to Call, there is no budget.
func (o *Output) Charge(n int) error {
	o.steps += int64(n)
	if o.maxSteps > 0 && o.steps > o.maxSteps {
		return &budgetError{steps: o.steps, limit: o.maxSteps}
	}
	return nil
}

// Steps returns the steps charged so far in this call.
func (o *Output) Steps() int64 { return o.steps }

// MaxValue returns the largest new value the call may produce, so a processor can stop
// building one that will be refused. 0 on an Output that was never passed to Call: no limit.
func (o *Output) MaxValue() int { return o.maxValue }

// MaxResult returns the largest result the call may produce; 0: no limit.
func (o *Output) MaxResult() int { return o.maxResult }

// resultFull reports whether the result has grown over its limit.
func (o *Output) resultFull() bool { return o.maxResult > 0 && len(o.Result) > o.maxResult }

type budgetError struct{ steps, limit int64 }

func (e *budgetError) Error() string {
	return "processor: over budget: more than " + strconv.FormatInt(e.limit, 10) + " steps"
}

func (e *budgetError) Unwrap() error { return ErrOverBudget }
