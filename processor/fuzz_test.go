package processor

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"testing"
)

// Fuzz targets for every decoder: the three value decoders, the three processors (which
// decode their arguments and their value) and the result decoders. None may panic; what
// decodes must re-encode to the same bytes; a processor given a valid value must leave a
// valid one.

func seedValues(f *testing.F) {
	f.Helper()
	hash, _ := EncodeHash(nil, fields("coins", "10", "name", "ann"))
	list, _ := EncodeList(nil, elems("a bb ccc"))
	zset, _ := EncodeZSet(nil, []Member{{"ann", 1}, {"bob", -2.5}, {"cy", 1}})
	for _, v := range [][]byte{nil, {}, hash, list, zset, []byte("text"), {FormatZSet, 0, 0, 0, 1}} {
		f.Add(v)
	}
}

func FuzzDecodeHash(f *testing.F) {
	seedValues(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := DecodeHash(b)
		if err != nil || len(b) == 0 {
			return
		}
		if again, err := EncodeHash(nil, fs); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %q, which encodes to %x, %v", b, fs, again, err)
		}
	})
}

func FuzzDecodeList(f *testing.F) {
	seedValues(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeList(b)
		if err != nil || len(b) == 0 {
			return
		}
		if again, err := EncodeList(nil, es); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %q, which encodes to %x, %v", b, es, again, err)
		}
	})
}

func FuzzDecodeZSet(f *testing.F) {
	seedValues(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := DecodeZSet(b)
		if err != nil || len(b) == 0 {
			return
		}
		if again, err := EncodeZSet(nil, ms); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x decodes to %v, which encodes to %x, %v", b, ms, again, err)
		}
	})
}

// FuzzDecodersAgree: the full decoders (DecodeHash...), the live values' decoders (HashType...)
// and EncodingOf (the type op) accept the same values, so that no value is named a zset by
// type and refused by the zset processor, or answered by a processor and refused by a client's
// decoder (issue 23, item 15).
func FuzzDecodersAgree(f *testing.F) {
	seedValues(f)
	negZero, _ := EncodeZSet(nil, []Member{{"ann", 1}})
	copy(negZero[len(negZero)-11:], []byte{0x80, 0, 0, 0, 0, 0, 0, 0}) // ann's score: -0
	f.Add(negZero)
	f.Fuzz(func(t *testing.T, b []byte) {
		full := map[string]func([]byte) error{
			"hash": func(b []byte) error { _, err := DecodeHash(b); return err },
			"list": func(b []byte) error { _, err := DecodeList(b); return err },
			"zset": func(b []byte) error { _, err := DecodeZSet(b); return err },
		}
		live := map[string]Type{"hash": HashType, "list": ListType, "zset": ZSetType}
		for name, decode := range full {
			fullErr := decode(b)
			_, liveErr := live[name].Decode(b)
			named := len(b) == 0 || EncodingOf(b) == name
			if (fullErr == nil) != (liveErr == nil) || (fullErr == nil) != named {
				t.Fatalf("%x as a %s: the full decoder says %v, the live one %v, EncodingOf %q", b, name, fullErr, liveErr, EncodingOf(b))
			}
			if fullErr != nil && !errors.Is(fullErr, ErrWrongType) || liveErr != nil && !errors.Is(liveErr, ErrWrongType) {
				t.Fatalf("%x as a %s: %v, %v; want ErrWrongType", b, name, fullErr, liveErr)
			}
		}
	})
}

// fuzzProcessor runs fn on an arbitrary value and arguments. decode is the value's full
// decoder.
func fuzzProcessor[T any](f *testing.F, fn Func, decode func([]byte) (T, error), args ...[]byte) {
	f.Helper()
	hash, _ := EncodeHash(nil, fields("coins", "10", "name", "ann"))
	list, _ := EncodeList(nil, elems("a bb ccc"))
	zset, _ := EncodeZSet(nil, []Member{{"ann", 1}, {"bob", -2.5}, {"cy", 1}})
	for _, v := range [][]byte{nil, hash, list, zset, []byte("text")} {
		for _, a := range args {
			f.Add(v, a)
		}
	}
	f.Fuzz(func(t *testing.T, value, args []byte) {
		_, validErr := decode(value)
		out := &Output{}
		_, err := Call(fn, Input{Value: value, Exists: value != nil, Args: args}, Limits{MaxValue: 1 << 16}, out)
		var pe *PanicError
		if errors.As(err, &pe) {
			t.Fatalf("panic on value %x, args %x: %v\n%s", value, args, pe.Value, pe.Stack)
		}
		if err == nil && validErr == nil && out.Action == Set {
			if _, err := decode(out.Value); err != nil {
				t.Fatalf("value %x, args %x: the new value %x is invalid: %v", value, args, out.Value, err)
			}
		}
		if err != nil && KindOf(err) == KindInternal {
			t.Fatalf("value %x, args %x: internal error %v", value, args, err)
		}
	})
}

func FuzzHash(f *testing.F) {
	fuzzProcessor(f, Hash, DecodeHash, HashSetArgs(fields("a", "1", "coins", "11")...), HashGetArgs("name", "x"),
		HashDelArgs("coins"), HashGetAllArgs(), HashLenArgs())
}

func FuzzList(f *testing.F) {
	fuzzProcessor(f, List, DecodeList, ListPushArgs(true, 2, elems("x y")...), ListPushArgs(false, 0, elems("z")...),
		ListRangeArgs(-2, -1), ListTrimArgs(1, 5), ListLenArgs())
}

func FuzzZSet(f *testing.F) {
	fuzzProcessor(f, ZSet, DecodeZSet, ZAddArgs("dee", 3, ZAddGT), ZIncrArgs("ann", 2), ZIncrArgs("new", 1),
		ZRankArgs("bob", true), ZTopArgs(2), ZRangeArgs(-1, 1, ZRangeDescending, 0, 1), ZRemArgs("cy", "ann"), ZCardArgs())
}

func FuzzResults(f *testing.F) {
	f.Add(appendU(nil, 7))
	f.Add([]byte{3, 1, 0, 0, 1, 1, '1'})
	f.Add(membersResult(Member{"ann", 1}, Member{"bob", 2}))
	f.Add(rangeResult("a b"))
	f.Add(scoreResult(ZAdded, 2))
	f.Add(rankResult(3, 1.5))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeCount(b)
		DecodeOptionals(b)
		DecodeFields(b)
		DecodeElements(b)
		DecodeScore(b)
		DecodeRank(b)
		if ms, err := DecodeMembers(b); err == nil {
			if again := membersResult(ms...); !bytes.Equal(again, b) {
				t.Fatalf("%x decodes to %v, which encodes to %x", b, ms, again)
			}
		}
		if es, err := DecodeElements(b); err == nil {
			again := appendU(nil, uint64(len(es)))
			for _, e := range es {
				again = appendBytes(again, e)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("%x decodes to %q, which encodes to %x", b, es, again)
			}
		}
	})
}

// TestHugeCounts: a count that claims far more items than its bytes hold fails, without
// allocating what it claims.
func TestHugeCounts(t *testing.T) {
	huge := appendU(nil, math.MaxUint64>>1)
	cases := []struct {
		name string
		run  func() error
		ok   bool // the call is valid: only the cap is huge
	}{
		{"hash set", func() error { return callErr(Hash, append([]byte{HashCmdSet}, huge...)) }, false},
		{"hash get", func() error { return callErr(Hash, append(append([]byte{HashCmdGet}, huge...), 1, 'a')) }, false},
		{"hash del", func() error { return callErr(Hash, append([]byte{HashCmdDel}, huge...)) }, false},
		{"list push", func() error { return callErr(List, append([]byte{ListCmdPushLeft, 0}, huge...)) }, false},
		{"list push cap", func() error { return callErr(List, append(append([]byte{ListCmdPushLeft}, huge...), 1, 1, 'a')) }, true},
		{"zset rem", func() error { return callErr(ZSet, append([]byte{ZSetCmdRem}, huge...)) }, false},
		{"optionals", func() error { _, err := DecodeOptionals(huge); return err }, false},
		{"fields", func() error { _, err := DecodeFields(huge); return err }, false},
		{"elements", func() error { _, err := DecodeElements(huge); return err }, false},
		{"members", func() error { _, err := DecodeMembers(huge); return err }, false},
		{"hash value", func() error { _, err := DecodeHash([]byte{FormatHash, 0xff, 0xff, 0xff, 0xff}); return err }, false},
		{"zset value", func() error { _, err := DecodeZSet([]byte{FormatZSet, 0xff, 0xff, 0xff, 0xff}); return err }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.run()
			runtime.ReadMemStats(&after)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
				t.Fatalf("allocated %d bytes", n)
			}
		})
	}
}

func callErr(fn Func, args []byte) error {
	_, err := Call(fn, Input{Args: args}, Limits{}, &Output{})
	return err
}

// FuzzLive runs a call on a live value decoded from an arbitrary value: nothing panics, a
// failed call leaves the value as it was, a change encodes to a valid value of Size bytes, and
// Undo takes it back.
func FuzzLive(f *testing.F) {
	hash, _ := EncodeHash(nil, fields("coins", "10", "name", "ann"))
	list, _ := EncodeList(nil, elems("a bb ccc"))
	zset, _ := EncodeZSet(nil, []Member{{"ann", 1}, {"bob", -2.5}, {"cy", 1}})
	for _, v := range [][]byte{nil, hash, list, zset} {
		for _, a := range [][]byte{HashSetArgs(fields("a", "1")...), HashDelArgs("coins", "x"), ListPushArgs(true, 2, elems("x y")...),
			ListTrimArgs(1, 1), ZIncrArgs("new", 1), ZAddArgs("ann", 5, ZAddGT), ZRemArgs("cy", "ann"), ZTopArgs(2)} {
			f.Add(v, a)
		}
	}
	f.Fuzz(func(t *testing.T, value, args []byte) {
		for _, typ := range []Type{HashType, ListType, ZSetType} {
			v, err := typ.Decode(value)
			if err != nil {
				continue
			}
			before := v.AppendEncoded(nil)
			out := &Output{}
			_, err = CallLive(v, Input{Exists: true, Args: args}, Limits{MaxValue: 1 << 16}, out)
			after := v.AppendEncoded(nil)
			switch {
			case err != nil && KindOf(err) == KindInternal:
				t.Fatalf("value %x, args %x: %v", value, args, err)
			case err != nil || out.Action != Set:
				if out.Action != Delete && !bytes.Equal(before, after) {
					t.Fatalf("value %x, args %x: changed without a Set", value, args)
				}
			default:
				if len(after) != v.Size() {
					t.Fatalf("value %x, args %x: Size %d, encoding %d bytes", value, args, v.Size(), len(after))
				}
				if _, err := typ.Decode(after); err != nil {
					t.Fatalf("value %x, args %x: the new value %x is invalid: %v", value, args, after, err)
				}
				v.Undo()
				if again := v.AppendEncoded(nil); !bytes.Equal(before, again) {
					t.Fatalf("value %x, args %x: Undo left %x, want %x", value, args, again, before)
				}
			}
		}
	})
}
