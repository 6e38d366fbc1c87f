package processor

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		proc, words string
		want        []byte
		err         error
	}{
		{"hash", "set name ann coins 10", HashSetArgs(fields("name", "ann", "coins", "10")...), nil},
		{"hash", "SET name", nil, ErrBadArgs},
		{"hash", "get a b", HashGetArgs("a", "b"), nil},
		{"hash", "del a", HashDelArgs("a"), nil},
		{"hash", "getall", HashGetAllArgs(), nil},
		{"hash", "len x", nil, ErrBadArgs},
		{"hash", "incr a", nil, ErrBadArgs},
		{"list", "lpush 100 a b", ListPushArgs(true, 100, elems("a b")...), nil},
		{"list", "rpush 0 a", ListPushArgs(false, 0, elems("a")...), nil},
		{"list", "rpush -1 a", nil, ErrBadArgs},
		{"list", "range 0 -1", ListRangeArgs(0, -1), nil},
		{"list", "trim 1 x", nil, ErrBadArgs},
		{"list", "len", ListLenArgs(), nil},
		{"zset", "add 10 ann", ZAddArgs("ann", 10, 0), nil},
		{"zset", "add xx GT 10 ann", ZAddArgs("ann", 10, ZAddXX|ZAddGT), nil},
		{"zset", "add yy 10 ann", nil, ErrBadArgs},
		{"zset", "incr -2.5 bob", ZIncrArgs("bob", -2.5), nil},
		{"zset", "rank bob", ZRankArgs("bob", false), nil},
		{"zset", "revrank bob", ZRankArgs("bob", true), nil},
		{"zset", "top 3", ZTopArgs(3), nil},
		{"zset", "range -inf +inf", ZRangeArgs(-inf, inf, 0, 0, 0), nil},
		{"zset", "range (1 5 desc limit 2 3", ZRangeArgs(1, 5, ZRangeMinExclusive|ZRangeDescending, 2, 3), nil},
		{"zset", "range 1 (5 limit 0", nil, ErrBadArgs},
		{"zset", "range nan 5", nil, ErrBadArgs},
		{"zset", "rem a b", ZRemArgs("a", "b"), nil},
		{"zset", "card", ZCardArgs(), nil},
		{"zset", "", nil, ErrBadArgs},
		{"mine", "x", nil, ErrUnknownProcessor},
	}
	for _, tt := range tests {
		t.Run(tt.proc+" "+tt.words, func(t *testing.T) {
			got, err := ParseArgs(tt.proc, strings.Fields(tt.words))
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("args %x, want %x", got, tt.want)
			}
		})
	}
}

func TestFormatResult(t *testing.T) {
	board := func() *key { return zsetOf(t, Member{"ann", 10}, Member{"bob", 20.5}) }
	tests := []struct {
		proc string
		key  *key
		args []byte
		want string
	}{
		{"hash", hashOf(t, "a", "1", "b", "two words"), HashGetArgs("b", "x"), "\"two words\"\n(nil)"},
		{"hash", hashOf(t, "a", "1"), HashGetAllArgs(), "a 1"},
		{"hash", hashOf(t, "a", "1"), HashLenArgs(), "(integer) 1"},
		{"list", listOf(t, "x y"), ListRangeArgs(0, -1), "x\ny"},
		{"list", &key{}, ListRangeArgs(0, -1), "(empty)"},
		{"zset", board(), ZTopArgs(5), "bob 20.5\nann 10"},
		{"zset", board(), ZRankArgs("ann", true), "(integer) 1 (score 10)"},
		{"zset", board(), ZRankArgs("zed", true), "(nil)"},
		{"zset", board(), ZIncrArgs("ann", 1), "updated 11"},
		{"zset", board(), ZAddArgs("zed", 1, ZAddXX), "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			fn, _ := Default().Lookup(tt.proc)
			res, _ := tt.key.must(t, fn, tt.args)
			got, err := FormatResult(tt.proc, tt.args, res)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := FormatResult("zset", ZCardArgs(), []byte{0x80}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed result: %v", err)
	}
	if _, err := FormatResult("mine", []byte{'x'}, nil); !errors.Is(err, ErrUnknownProcessor) {
		t.Fatalf("custom processor: %v", err)
	}
}
