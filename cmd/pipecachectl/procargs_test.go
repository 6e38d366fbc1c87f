package main

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pipecache/pipecache/processor"
	"github.com/stretchr/testify/require"
)

func TestParseArgs(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		proc, words string
		want        []byte
		err         error
	}{
		{"hash", "set name ann coins 10", processor.HashSetArgs(processor.Field{Name: "name", Value: []byte("ann")}, processor.Field{Name: "coins", Value: []byte("10")}), nil},
		{"hash", "SET name", nil, processor.ErrBadArgs},
		{"hash", "get a b", processor.HashGetArgs("a", "b"), nil},
		{"hash", "del a", processor.HashDelArgs("a"), nil},
		{"hash", "getall", processor.HashGetAllArgs(), nil},
		{"hash", "len x", nil, processor.ErrBadArgs},
		{"hash", "incr a", nil, processor.ErrBadArgs},
		{"list", "lpush 100 a b", processor.ListPushArgs(true, 100, []byte("a"), []byte("b")), nil},
		{"list", "rpush 0 a", processor.ListPushArgs(false, 0, []byte("a")), nil},
		{"list", "rpush -1 a", nil, processor.ErrBadArgs},
		{"list", "range 0 -1", processor.ListRangeArgs(0, -1), nil},
		{"list", "trim 1 x", nil, processor.ErrBadArgs},
		{"list", "len", processor.ListLenArgs(), nil},
		{"zset", "add 10 ann", processor.ZAddArgs("ann", 10, 0), nil},
		{"zset", "add xx GT 10 ann", processor.ZAddArgs("ann", 10, processor.ZAddXX|processor.ZAddGT), nil},
		{"zset", "add yy 10 ann", nil, processor.ErrBadArgs},
		{"zset", "incr -2.5 bob", processor.ZIncrArgs("bob", -2.5), nil},
		{"zset", "rank bob", processor.ZRankArgs("bob", false), nil},
		{"zset", "revrank bob", processor.ZRankArgs("bob", true), nil},
		{"zset", "top 3", processor.ZTopArgs(3), nil},
		{"zset", "range -inf +inf", processor.ZRangeArgs(-inf, inf, 0, 0, 0), nil},
		{"zset", "range (1 5 desc limit 2 3", processor.ZRangeArgs(1, 5, processor.ZRangeMinExclusive|processor.ZRangeDescending, 2, 3), nil},
		{"zset", "range 1 (5 limit 0", nil, processor.ErrBadArgs},
		{"zset", "range nan 5", nil, processor.ErrBadArgs},
		{"zset", "rem a b", processor.ZRemArgs("a", "b"), nil},
		{"zset", "card", processor.ZCardArgs(), nil},
		{"zset", "", nil, processor.ErrBadArgs},
		{"mine", "x", nil, errNotBuiltin},
	}
	for _, tt := range tests {
		t.Run(tt.proc+" "+tt.words, func(t *testing.T) {
			got, err := parseArgs(tt.proc, strings.Fields(tt.words))
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("args %x, want %x", got, tt.want)
			}
		})
	}
}

// runBuiltin runs built-in proc with args on a key holding value (nil: none) and returns its
// result, as the server would answer.
func runBuiltin(tb testing.TB, proc string, value, args []byte) []byte {
	tb.Helper()
	fn, ok := processor.Default().Lookup(proc)
	require.True(tb, ok, proc)
	var out processor.Output
	_, err := processor.Call(fn, processor.Input{Key: []byte("k"), Value: value, Exists: value != nil, Args: args},
		processor.Limits{}, &out)
	require.NoError(tb, err)
	return out.Result
}

func TestFormatResult(t *testing.T) {
	encoded := func(b []byte, err error) []byte { require.NoError(t, err); return b }
	hash := encoded(processor.EncodeHash(nil, []processor.Field{{Name: "a", Value: []byte("1")}, {Name: "b", Value: []byte("two words")}}))
	oneField := encoded(processor.EncodeHash(nil, []processor.Field{{Name: "a", Value: []byte("1")}}))
	list := encoded(processor.EncodeList(nil, [][]byte{[]byte("x"), []byte("y")}))
	board := encoded(processor.EncodeZSet(nil, []processor.Member{{Name: "ann", Score: 10}, {Name: "bob", Score: 20.5}}))
	tests := []struct {
		proc        string
		value, args []byte
		want        string
	}{
		{"hash", hash, processor.HashGetArgs("b", "x"), "\"two words\"\n(nil)"},
		{"hash", oneField, processor.HashGetAllArgs(), "a 1"},
		{"hash", oneField, processor.HashLenArgs(), "(integer) 1"},
		{"list", list, processor.ListRangeArgs(0, -1), "x\ny"},
		{"list", nil, processor.ListRangeArgs(0, -1), "(empty)"},
		{"zset", board, processor.ZTopArgs(5), "bob 20.5\nann 10"},
		{"zset", board, processor.ZRankArgs("ann", true), "(integer) 1 (score 10)"},
		{"zset", board, processor.ZRankArgs("zed", true), "(nil)"},
		{"zset", board, processor.ZIncrArgs("ann", 1), "updated 11"},
		{"zset", board, processor.ZAddArgs("zed", 1, processor.ZAddXX), "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := formatResult(tt.proc, tt.args, runBuiltin(t, tt.proc, tt.value, tt.args))
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := formatResult("zset", processor.ZCardArgs(), []byte{0x80}); !errors.Is(err, processor.ErrMalformed) {
		t.Fatalf("malformed result: %v", err)
	}
	if _, err := formatResult("mine", []byte{'x'}, nil); !errors.Is(err, errNotBuiltin) {
		t.Fatalf("custom processor: %v", err)
	}
}
