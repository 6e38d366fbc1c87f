package processor

import (
	"bytes"
	"testing"
)

// key simulates the stage's side of a key: it runs processors with Call and applies their
// action to the key's value, as CachePrc would.
type key struct {
	value  []byte
	exists bool
	out    Output
	lim    Limits
}

// do runs fn with args on k and returns a copy of the result.
func (k *key) do(tb testing.TB, fn Func, args []byte) ([]byte, Action, error) {
	tb.Helper()
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
