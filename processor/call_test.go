package processor

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCallPanic(t *testing.T) {
	boom := func(in Input, out *Output) error {
		out.Action = Set
		out.Value = append(out.Value, "half-built"...)
		out.Result = append(out.Result, "partial"...)
		var m map[string]int
		m["x"] = 1 // panics: assignment to a nil map
		return nil
	}
	k := with([]byte("original"))
	_, act, err := k.do(t, boom, nil)
	var pe *PanicError
	if !errors.As(err, &pe) || !errors.Is(err, ErrInternal) || KindOf(err) != KindInternal {
		t.Fatalf("err = %v, want a *PanicError of kind internal", err)
	}
	if act != Unchanged || string(k.value) != "original" {
		t.Fatalf("after a panic: action %v, value %q", act, k.value)
	}
	if !strings.Contains(err.Error(), "nil map") || !bytes.Contains(pe.Stack, []byte("TestCallPanic")) {
		t.Fatalf("panic error %q lacks the panic's value or stack:\n%s", err, pe.Stack)
	}
	// The Output is fine for the next call.
	if res, _, err := k.do(t, Hash, HashLenArgs()); !errors.Is(err, ErrWrongType) {
		t.Fatalf("hash len on a text value = %x, %v; want ErrWrongType", res, err)
	}
	if res, _ := k.must(t, resultOf(3), nil); string(res) != "rrr" {
		t.Fatalf("the call after a panic returned %q", res)
	}
}

func TestCallPanicNil(t *testing.T) {
	_, err := Call(func(Input, *Output) error { panic(nil) }, Input{}, Limits{}, &Output{})
	if KindOf(err) != KindInternal || err == nil {
		t.Fatalf("panic(nil) gave %v", err)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		err  error
		want Kind
	}{
		{fmt.Errorf("score: %w", ErrBadArgs), KindBadArgs},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrWrongType)), KindWrongType},
		{ErrTooLarge, KindTooLarge},
		{&budgetError{steps: 2, limit: 1}, KindOverBudget},
		{&PanicError{Value: 1}, KindInternal},
		{errors.New("anything else"), KindInternal},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func setTo(n int) Func {
	return func(in Input, out *Output) error {
		out.Action, out.Value = Set, append(out.Value, bytes.Repeat([]byte("v"), n)...)
		return nil
	}
}

func resultOf(n int) Func {
	return func(in Input, out *Output) error {
		out.Result = append(out.Result, bytes.Repeat([]byte("r"), n)...)
		return nil
	}
}

func TestCallLimits(t *testing.T) {
	tests := []struct {
		name string
		fn   Func
		lim  Limits
		want error
	}{
		{"value at the limit", setTo(100), Limits{MaxValue: 100}, nil},
		{"value over the limit", setTo(101), Limits{MaxValue: 100}, ErrTooLarge},
		{"value over the default", setTo(DefaultMaxValue + 1), Limits{}, ErrTooLarge},
		{"result at the limit", resultOf(10), Limits{MaxResult: 10}, nil},
		{"result over the limit", resultOf(11), Limits{MaxResult: 10}, ErrTooLarge},
		{"result limit is the value limit by default", resultOf(11), Limits{MaxValue: 10}, ErrTooLarge},
		{"steps within budget", charge(10), Limits{MaxSteps: 10}, nil},
		{"steps over budget", charge(11), Limits{MaxSteps: 10}, ErrOverBudget},
		{"steps, no budget", charge(1 << 40), Limits{}, nil},
		{"bad action", func(_ Input, out *Output) error { out.Action = 7; return nil }, Limits{}, ErrInternal},
		{"returned error", func(Input, *Output) error { return fmt.Errorf("%w: no", ErrBadArgs) }, Limits{}, ErrBadArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := with([]byte("old"))
			k.lim = tt.lim
			_, _, err := k.do(t, tt.fn, nil)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil && string(k.value) != "old" {
				t.Fatalf("a failed call changed the value to %q", k.value)
			}
		})
	}
}

// charge ignores the budget's answer, to show that Call enforces it anyway.
func charge(n int) Func {
	return func(_ Input, out *Output) error {
		_ = out.Charge(n)
		return nil
	}
}

func TestCallTimeBudget(t *testing.T) {
	slow := func(in Input, out *Output) error {
		start := time.Now()
		for i := 0; i < 1e9 && time.Since(start) <= time.Millisecond; i++ {
		}
		out.Action, out.Value = Set, append(out.Value, "new"...)
		return nil
	}
	k := with([]byte("old"))
	k.lim.MaxTime = time.Microsecond
	st, err := Call(slow, Input{Value: k.value, Exists: true}, k.lim, &k.out)
	if !errors.Is(err, ErrOverBudget) || k.out.Action != Unchanged {
		t.Fatalf("slow call: %v, action %v; want ErrOverBudget and unchanged", err, k.out.Action)
	}
	if st.Elapsed <= time.Millisecond {
		t.Fatalf("Elapsed = %v, but the processor ran for over 1ms", st.Elapsed)
	}
}

func TestCallStats(t *testing.T) {
	st, err := Call(charge(42), Input{}, Limits{}, &Output{})
	if err != nil || st.Steps != 42 {
		t.Fatalf("stats %+v, %v; want 42 steps", st, err)
	}
}

func TestCallDeleteAbsent(t *testing.T) {
	del := func(_ Input, out *Output) error { out.Action = Delete; return nil }
	out := &Output{}
	if _, err := Call(del, Input{}, Limits{}, out); err != nil || out.Action != Unchanged {
		t.Fatalf("delete of an absent key: %v, %v; want unchanged", out.Action, err)
	}
	if _, err := Call(del, Input{Exists: true}, Limits{}, out); err != nil || out.Action != Delete {
		t.Fatalf("delete of a key: %v, %v; want delete", out.Action, err)
	}
}

// TestCallOwnSlice: a processor that points Value at a slice of its own (here its input)
// must not have the next call write into that slice.
func TestCallOwnSlice(t *testing.T) {
	own := []byte("mine, keep out")
	keep := bytes.Clone(own)
	aliasing := func(_ Input, out *Output) error {
		out.Action, out.Value, out.Result = Set, own[:4], own[6:10]
		return nil
	}
	out := &Output{}
	if _, err := Call(aliasing, Input{}, Limits{}, out); err != nil || string(out.Value) != "mine" {
		t.Fatalf("got %q, %v", out.Value, err)
	}
	if _, err := Call(setTo(8), Input{}, Limits{}, out); err != nil {
		t.Fatal(err)
	}
	if _, err := Call(resultOf(8), Input{}, Limits{}, out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(own, keep) {
		t.Fatalf("a later call wrote into the processor's slice: %q", own)
	}
}

// TestCallLiveNoAllocs: once the Output's buffers have grown, a call on a live value that
// changes no entry's existence (an update of an existing member or field, a read) allocates
// nothing.
func TestCallLiveNoAllocs(t *testing.T) {
	z := ZSetType.Empty()
	h := HashType.Empty()
	var out Output
	for i := range 1000 {
		if _, err := CallLive(z, Input{Args: ZIncrArgs(fmt.Sprintf("player:%d", i), float64(i))}, Limits{}, &out); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := CallLive(h, Input{Args: HashSetArgs(Field{"a", []byte("1")}, Field{"b", []byte("2")})}, Limits{}, &out); err != nil {
		t.Fatal(err)
	}
	args := [][]byte{ZIncrArgs("player:500", 1), ZIncrArgs("player:500", -1), ZRankArgs("player:7", true), ZTopArgs(10),
		ZRangeArgs(10, 20, 0, 0, 5), HashGetArgs("a", "b"), HashSetArgs(Field{"a", []byte("1")}, Field{"b", []byte("2")})}
	vs := []Value{z, z, z, z, z, h, h}
	for i, a := range args {
		in := Input{Exists: true, Args: a}
		CallLive(vs[i], in, Limits{}, &out) // grow
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := CallLive(vs[i], in, Limits{}, &out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("call %d (%x) allocates %v times", i, a[0], allocs)
		}
	}
}
