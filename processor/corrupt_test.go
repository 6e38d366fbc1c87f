package processor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
)

// forgedZSet returns a zset value of ann, bob and cy with the given scores, written as
// EncodeZSet would lay it out but without its checks, as a client could with a plain set.
func forgedZSet(ann, bob, cy float64) func(testing.TB) []byte {
	return func(tb testing.TB) []byte {
		b := encoded(tb)(EncodeZSet(nil, []Member{{"ann", 1}, {"bob", 2}, {"cy", 3}}))
		area := headerLen + 8*3
		for i, s := range []float64{ann, bob, cy} {
			start := area + 11*i // "ann" and "bob" entries are 11 bytes
			binary.BigEndian.PutUint64(b[start:], math.Float64bits(s))
		}
		return b
	}
}

// TestCorruptValues: values whose header is sound but whose tables are not, or that are laid
// out right but not canonical (a NaN score, members out of order: issue 23, item 15), as a
// client could write with a plain set, make the processors fail with ErrWrongType, whatever the
// sub-command: not panic or answer. The live values' decoders refuse them the same way.
func TestCorruptValues(t *testing.T) {
	zset := func(tb testing.TB) []byte {
		return encoded(tb)(EncodeZSet(nil, []Member{{"ann", 1}, {"bob", 2}, {"cy", 3}}))
	}
	put := func(b []byte, at, v int) []byte { binary.BigEndian.PutUint32(b[at:], uint32(v)); return b }
	const offs, zmid = headerLen, headerLen + 4*3 // where the offsets and the zset's score order start
	tests := []struct {
		name  string
		fn    Func
		value func(testing.TB) []byte
		args  []byte
	}{
		{"zset: score order names a member past n", ZSet, func(tb testing.TB) []byte { return put(zset(tb), zmid+8, 7) }, ZTopArgs(3)},
		{"zset: score order out of order", ZSet, func(tb testing.TB) []byte { return put(put(zset(tb), zmid, 2), zmid+8, 0) }, ZRankArgs("ann", false)},
		{"zset: rem of a member missing from the score order", ZSet, func(tb testing.TB) []byte { return put(zset(tb), zmid+8, 0) }, ZRemArgs("cy")},
		{"zset: offset past the end", ZSet, func(tb testing.TB) []byte { return put(zset(tb), offs+4, 1000) }, ZRankArgs("bob", false)},
		{"zset: entry shorter than a score", ZSet, func(tb testing.TB) []byte { return put(zset(tb), offs+4, 2) }, ZTopArgs(3)},
		{"hash: offsets going back", Hash, func(tb testing.TB) []byte {
			return put(encoded(tb)(EncodeHash(nil, fields("a", "1", "b", "2", "c", "3"))), offs+8, 1)
		}, HashGetAllArgs()},
		{"hash: field length past its entry", Hash, func(tb testing.TB) []byte {
			b := encoded(tb)(EncodeHash(nil, fields("a", "1")))
			b[len(b)-3] = 9
			return b
		}, HashGetArgs("a")},
		{"hash: rebuild over a bad offset", Hash, func(tb testing.TB) []byte {
			return put(encoded(tb)(EncodeHash(nil, fields("a", "1", "b", "2", "c", "3"))), offs+4, 0xffff)
		}, HashSetArgs(fields("0", "x")...)},
		{"list: offset past the end", List, func(tb testing.TB) []byte {
			return put(encoded(tb)(EncodeList(nil, elems("a b c"))), offs+8, 99)
		}, ListRangeArgs(0, -1)},
		{"list: push over a bad offset", List, func(tb testing.TB) []byte {
			return put(encoded(tb)(EncodeList(nil, elems("a b c"))), offs+4, 99)
		}, ListPushArgs(true, 0, []byte("x"))},
		{"list: n past the bytes", List, func(tb testing.TB) []byte {
			return put(encoded(tb)(EncodeList(nil, elems("a b c"))), 1, 1<<30)
		}, ListLenArgs()},
		{"list: shorter than its header", List, func(testing.TB) []byte { return []byte{FormatList, 0} }, ListLenArgs()},
		// Issue 23, item 15: forged values that every offset check passes.
		{"zset: a NaN score, top", ZSet, forgedZSet(math.NaN(), 2, 3), ZTopArgs(3)},
		{"zset: a NaN score, rank", ZSet, forgedZSet(1, math.NaN(), 3), ZRankArgs("cy", true)},
		{"zset: an infinite score, incr", ZSet, forgedZSet(1, 2, math.Inf(1)), ZIncrArgs("ann", 1)},
		{"zset: a NaN score, card", ZSet, forgedZSet(math.NaN(), 2, 3), ZCardArgs()},
		{"zset: members out of order, add", ZSet, func(tb testing.TB) []byte {
			b := zset(tb)
			copy(b[len(b)-2:], "aa") // "cy" becomes "aa", before "ann"
			return b
		}, ZAddArgs("bob", 7, 0)},
		{"zset: a member twice, rem", ZSet, func(tb testing.TB) []byte {
			b := zset(tb)
			copy(b[len(b)-13:], "ann") // "bob" (before cy's 10-byte entry) becomes "ann"
			return b
		}, ZRemArgs("ann")},
		{"zset: score order not ascending, top", ZSet, func(tb testing.TB) []byte {
			return put(put(zset(tb), zmid, 2), zmid+8, 0) // the score order claims cy < bob < ann
		}, ZTopArgs(3)},
		{"zset: a -0 score (stored as +0), top", ZSet, forgedZSet(math.Copysign(0, -1), 2, 3), ZTopArgs(3)},
		{"zset: a -Inf score in order, add several", ZSet, forgedZSet(math.Inf(-1), 2, 3), ZAddManyArgs(0, Member{"dan", 4})},
		{"zset: a NaN score, range", ZSet, forgedZSet(1, 2, math.NaN()), ZRangeArgs(math.Inf(-1), math.Inf(1), 0, 0, 0)},
		{"zset: a truncated entry, rank", ZSet, func(tb testing.TB) []byte {
			b := zset(tb)
			return b[:len(b)-4] // cy's entry: 6 bytes, no room for its score
		}, ZRankArgs("ann", false)},
		{"zset: a count over the bytes, card", ZSet, func(tb testing.TB) []byte { return put(zset(tb), 1, 1<<20) }, ZCardArgs()},
		{"zset: a count under the entries, top", ZSet, func(tb testing.TB) []byte { return put(zset(tb), 1, 2) }, ZTopArgs(3)},
		{"hash: a field twice, set", Hash, func(tb testing.TB) []byte {
			b := encoded(tb)(EncodeHash(nil, fields("a", "1", "b", "2")))
			b[len(b)-2] = 'a' // "b" becomes "a"
			return b
		}, HashSetArgs(fields("c", "3")...)},
		{"hash: fields out of order, get", Hash, func(tb testing.TB) []byte {
			b := encoded(tb)(EncodeHash(nil, fields("a", "1", "b", "2")))
			b[len(b)-2] = 'A' // "b" becomes "A", before "a"
			return b
		}, HashGetArgs("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := with(tt.value(t))
			res, act, err := k.do(t, tt.fn, tt.args)
			if !errors.Is(err, ErrWrongType) {
				t.Fatalf("got %x, %v, %v; want ErrWrongType", res, act, err)
			}
			typ := map[byte]Type{FormatHash: HashType, FormatList: ListType, FormatZSet: ZSetType}[k.value[0]]
			if _, err := typ.Decode(k.value); !errors.Is(err, ErrWrongType) {
				t.Fatalf("the live decoder says %v; want ErrWrongType", err)
			}
			if name := EncodingOf(k.value); name != "" {
				t.Fatalf("EncodingOf says %q of a value its processor refuses", name)
			}
		})
	}
}

// TestBuiltinBudgets: the built-ins charge before they work (on a live value as on an encoded
// one), so a call over its step budget or its result limit fails and changes nothing.
func TestBuiltinBudgets(t *testing.T) {
	forModes(t, ZSetType, func(t *testing.T, k *key) {
		for i := range 1000 {
			k.must(t, ZSet, ZAddArgs(fmt.Sprintf("m%04d", i), float64(i), 0))
		}
		before := string(k.value)
		tests := []struct {
			name string
			lim  Limits
			args []byte
			err  error
		}{
			{"update within budget", Limits{MaxSteps: 30}, ZIncrArgs("m0001", 1), nil},
			{"update over budget", Limits{MaxSteps: 10}, ZIncrArgs("m0002", 1), ErrOverBudget},
			{"top within budget", Limits{MaxSteps: 200}, ZTopArgs(100), nil},
			{"top over budget", Limits{MaxSteps: 200}, ZTopArgs(1000), ErrOverBudget},
			{"rank within a tiny budget", Limits{MaxSteps: 30}, ZRankArgs("m0500", false), nil},
			{"result over the limit", Limits{MaxResult: 100}, ZTopArgs(1000), ErrTooLarge},
			{"new value over the limit", Limits{MaxValue: 1000}, ZIncrArgs("m0003", 1), ErrTooLarge},
			{"insert over the limit", Limits{MaxValue: 1000}, ZIncrArgs("new", 1), ErrTooLarge},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := with([]byte(before))
				c.lim, c.typ = tt.lim, k.typ
				_, _, err := c.do(t, ZSet, tt.args)
				if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if err != nil && string(c.value) != before {
					t.Fatal("a failed call changed the value")
				}
			})
		}
	})
}

// TestEncodingOf: the type op's check names a canonical value's built-in and allocates nothing,
// however large the value (it runs on CachePrc's loop for any key a client asks about).
func TestEncodingOf(t *testing.T) {
	zset := encoded(t)(EncodeZSet(nil, []Member{{"ann", 1}, {"bob", 2}, {"cy", 3}}))
	for want, v := range map[string][]byte{
		"hash": encoded(t)(EncodeHash(nil, fields("a", "1", "b", "2"))), "list": encoded(t)(EncodeList(nil, elems("a b"))),
		"zset": zset, "": []byte("plain"),
	} {
		if got := EncodingOf(v); got != want {
			t.Errorf("EncodingOf(%x) = %q, want %q", v, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { EncodingOf(zset) }); n != 0 {
		t.Errorf("EncodingOf allocates %v times", n)
	}
}
