package processor

import (
	"runtime/debug"
	"time"
)

// Live values: a processor whose value type is a Type works on values the stage keeps decoded
// between calls, encoding them once per store commit instead of decoding and encoding them on
// every call. The built-ins hash, list and zset are Types (HashType, ListType, ZSetType): a
// `zset incr` on a board the stage holds costs O(log n), not the O(n) of a copy of the value.
//
// The encodings stay what PROCESSORS.md specifies: they are what the store keeps and what a
// plain get returns. A Type's Decode checks the whole value (as DecodeHash, DecodeList and
// DecodeZSet do), once, when the stage first needs it decoded; a value that is not canonical
// (a forged zset with a NaN score or unsorted members, written by a plain set) is refused with
// ErrWrongType by every call.

// A Type is a value type whose values the stage may keep decoded (live) between calls.
// Registry.RegisterType registers one under a name, with the Func that runs it on encoded
// values (TypeFunc).
type Type interface {
	// Decode decodes a value, checking all of it: an error wraps ErrWrongType. The empty
	// value decodes as an empty one. The Value does not keep b.
	Decode(b []byte) (Value, error)
	// Empty returns a value with no entries, for a key that does not exist.
	Empty() Value
}

// Value is a decoded value of a Type. It is not safe for concurrent use: the stage calls it
// from its loop only.
type Value interface {
	// Exec runs one call, as a Func does, on the value in place: in.Value is nil (the value is
	// the receiver) and in.Exists says whether the key exists. On success with out.Action Set
	// the value has changed and out.Value is left empty (the stage encodes the value when it
	// writes it); on an error the value is as it was.
	Exec(in Input, out *Output) error
	// Undo takes back the changes of the last Exec (which succeeded), for a call that CallLive
	// refuses after it ran (over its time budget).
	Undo()
	// AppendEncoded appends the value's encoding to dst.
	AppendEncoded(dst []byte) []byte
	// Size returns the length of the encoding.
	Size() int
	// Mem returns the memory the value holds, approximately, for the stage's memory budget.
	Mem() int
}

// CallLive runs one call of v, as Call runs a Func: it recovers a panic into a *PanicError,
// enforces lim (a new value, that is v's encoding, over MaxValue is ErrTooLarge) and measures
// the time. On success out.Action says what became of the key and out.Result holds the
// result; out.Value is empty (with Set, v is the new value). On an error v is as it was, except
// after a panic (a *PanicError): v may then be half changed, and the stage must drop it.
func CallLive(v Value, in Input, lim Limits, out *Output) (Stats, error) {
	out.begin(lim)
	in.Value = nil
	start := time.Now()
	err := runLive(v, in, out)
	st := Stats{Elapsed: time.Since(start), Steps: out.steps}
	out.grow()
	if err == nil {
		out.Value = out.value[:0]
		err = out.check(lim, st)
		if err == nil && out.Action == Set && v.Size() > out.maxValue {
			err = tooLarge("new value of %d bytes over the limit of %d", v.Size(), out.maxValue)
		}
		if err != nil && out.Action == Set {
			v.Undo()
		}
	}
	if err != nil {
		out.reset()
		return st, err
	}
	if out.Action == Delete && !in.Exists {
		out.Action = Unchanged
	}
	return st, nil
}

// runLive calls v.Exec, recovering a panic into a *PanicError.
func runLive(v Value, in Input, out *Output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return v.Exec(in, out)
}

// TypeFunc returns the Func that runs t's calls on encoded values: it decodes the value, runs
// the call and, if the value changed, encodes it. It takes the same steps (Output.Charge) as
// the call on a live value, but O(n) time for a value of n entries: the stage keeps values of
// a registered Type decoded instead, and clients use it to run a call locally.
func TypeFunc(t Type) Func {
	return func(in Input, out *Output) error {
		v, err := decodeFor(t, in)
		if err != nil {
			return err
		}
		in.Value = nil
		if err := v.Exec(in, out); err != nil {
			return err
		}
		if out.Action == Set {
			if out.maxValue > 0 && v.Size() > out.maxValue {
				return tooLarge("new value of %d bytes over the limit of %d", v.Size(), out.maxValue)
			}
			out.Value = v.AppendEncoded(out.Value[:0])
		}
		return nil
	}
}

// decodeFor returns in's value decoded by t, or t's empty value for a key that does not exist.
func decodeFor(t Type, in Input) (Value, error) {
	if !in.Exists {
		return t.Empty(), nil
	}
	return t.Decode(in.Value)
}

// beginCall reads a built-in's sub-command and charges the call's first step.
func beginCall(in Input, out *Output, what string) (reader, byte, error) {
	r := reader{b: in.Args, kind: ErrBadArgs}
	cmd := r.byte1(what)
	if r.err != nil {
		return r, 0, r.err
	}
	return r, cmd, out.Charge(1)
}

// parseChecked reads a value in the table layout and checks its offsets (checkTable).
func parseChecked(b []byte, format byte, midSize int, what string) (table, error) {
	t, err := parseTable(b, format, midSize, what)
	if err == nil {
		err = checkTable(&t, what)
	}
	return t, err
}
