package processor

import (
	"bytes"
	"testing"
)

// key simulates the stage's side of a key: it runs processors with Call and applies their
// action to the key's value, as CachePrc would. With typ set, it keeps the value live instead,
// as CachePrc does for a processor registered as a Type: decoded once, run with CallLive, and
// encoded after each change (for the checks).
type key struct {
	value  []byte
	exists bool
	out    Output
	lim    Limits
	typ    Type  // run calls on a live value of this Type, not with the Func given to do
	live   Value // the live value, once decoded
	calls  int
}

// forModes runs test on a key of encoded values, and on a key of live values of typ.
func forModes(t *testing.T, typ Type, test func(*testing.T, *key)) {
	t.Run("encoded", func(t *testing.T) { test(t, &key{}) })
	t.Run("live", func(t *testing.T) { test(t, &key{typ: typ}) })
}

// do runs fn with args on k and returns a copy of the result.
func (k *key) do(tb testing.TB, fn Func, args []byte) ([]byte, Action, error) {
	tb.Helper()
	if k.typ != nil {
		return k.doLive(tb, args)
	}
	before := bytes.Clone(k.value)
	_, err := Call(fn, Input{Key: []byte("k"), Value: k.value, Exists: k.exists, Args: args}, k.lim, &k.out)
	if !bytes.Equal(before, k.value) {
		tb.Fatalf("the processor wrote into its input value")
	}
	if err != nil {
		if k.out.Action != Unchanged || len(k.out.Value) != 0 || len(k.out.Result) != 0 {
			tb.Fatalf("failed call left %v, %d value bytes, %d result bytes", k.out.Action, len(k.out.Value), len(k.out.Result))
		}
		return nil, Unchanged, err
	}
	switch k.out.Action {
	case Set:
		k.value, k.exists = bytes.Clone(k.out.Value), true
	case Delete:
		k.value, k.exists = nil, false
	}
	return bytes.Clone(k.out.Result), k.out.Action, nil
}

// doLive runs a call on k's live value. Every fifth change is taken back with Undo (the value
// must then encode as before) and done again.
func (k *key) doLive(tb testing.TB, args []byte) ([]byte, Action, error) {
	tb.Helper()
	if k.live == nil {
		v, err := decodeFor(k.typ, Input{Value: k.value, Exists: k.exists})
		if err != nil {
			return nil, Unchanged, err
		}
		k.live = v
	}
	in := Input{Key: []byte("k"), Exists: k.exists, Args: args}
	before := k.live.AppendEncoded(nil)
	_, err := CallLive(k.live, in, k.lim, &k.out)
	if k.calls++; err == nil && k.out.Action == Set && k.calls%5 == 0 {
		k.live.Undo()
		if after := k.live.AppendEncoded(nil); !bytes.Equal(before, after) {
			tb.Fatalf("args %x: Undo left %x, want %x", args, after, before)
		}
		_, err = CallLive(k.live, in, k.lim, &k.out)
	}
	if err != nil {
		if after := k.live.AppendEncoded(nil); !bytes.Equal(before, after) {
			tb.Fatalf("args %x: a failed call changed the live value to %x from %x", args, after, before)
		}
		return nil, Unchanged, err
	}
	switch k.out.Action {
	case Set:
		k.value, k.exists = k.live.AppendEncoded(nil), true
		if k.live.Size() != len(k.value) {
			tb.Fatalf("args %x: Size says %d, the encoding has %d bytes", args, k.live.Size(), len(k.value))
		}
	case Delete:
		k.value, k.exists, k.live = nil, false, nil
	}
	return bytes.Clone(k.out.Result), k.out.Action, nil
}

// must is do that fails the test on an error.
func (k *key) must(tb testing.TB, fn Func, args []byte) ([]byte, Action) {
	tb.Helper()
	res, act, err := k.do(tb, fn, args)
	if err != nil {
		tb.Fatalf("args %x: %v", args, err)
	}
	return res, act
}

// with returns a key holding value.
func with(value []byte) *key { return &key{value: value, exists: value != nil} }

func count(tb testing.TB, res []byte) uint64 {
	tb.Helper()
	n, err := DecodeCount(res)
	if err != nil {
		tb.Fatalf("result %x: %v", res, err)
	}
	return n
}

// encoded returns a function that returns an encoder's bytes, failing tb on its error:
// encoded(t)(EncodeHash(nil, fields)).
func encoded(tb testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
}
