package processor

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func zsetOf(tb testing.TB, ms ...Member) *key {
	tb.Helper()
	return with(encoded(tb)(EncodeZSet(nil, ms)))
}

func membersResult(ms ...Member) []byte {
	b := appendU(nil, uint64(len(ms)))
	for _, m := range ms {
		b = appendF64(appendString(b, m.Name), m.Score)
	}
	return b
}

func scoreResult(status byte, score float64) []byte { return appendF64([]byte{status}, score) }

func rankResult(rank uint64, score float64) []byte {
	return appendF64(appendU([]byte{1}, rank), score)
}

func TestZSet(t *testing.T) {
	inf := math.Inf(1)
	ann, bob, cy := Member{"ann", 10}, Member{"bob", 20}, Member{"cy", 20}
	board := func() *key { return zsetOf(t, cy, ann, bob) } // ascending: ann 10, bob 20, cy 20
	tests := []struct {
		name   string
		key    *key
		args   []byte
		result []byte
		action Action
		after  []Member // ascending
		err    error
	}{
		{"add to a missing key", &key{}, ZAddArgs("ann", 10, 0), scoreResult(ZAdded, 10), Set, []Member{ann}, nil},
		{"add to an empty value", with([]byte{}), ZAddArgs("ann", 10, 0), scoreResult(ZAdded, 10), Set, []Member{ann}, nil},
		{"add a new member between", board(), ZAddArgs("al", 15, 0), scoreResult(ZAdded, 15), Set, []Member{ann, {"al", 15}, bob, cy}, nil},
		{"add updates a score", board(), ZAddArgs("ann", 30, 0), scoreResult(ZUpdated, 30), Set, []Member{bob, cy, {"ann", 30}}, nil},
		{"add the same score changes nothing", board(), ZAddArgs("ann", 10, 0), scoreResult(ZUnchanged, 10), Unchanged, []Member{ann, bob, cy}, nil},
		{"add NX on an existing member", board(), ZAddArgs("ann", 30, ZAddNX), scoreResult(ZUnchanged, 10), Unchanged, []Member{ann, bob, cy}, nil},
		{"add XX on a new member", board(), ZAddArgs("dee", 30, ZAddXX), scoreResult(ZAbsent, 0), Unchanged, []Member{ann, bob, cy}, nil},
		{"add GT with a lower score", board(), ZAddArgs("bob", 5, ZAddGT), scoreResult(ZUnchanged, 20), Unchanged, []Member{ann, bob, cy}, nil},
		{"add GT with a higher score", board(), ZAddArgs("bob", 25, ZAddGT), scoreResult(ZUpdated, 25), Set, []Member{ann, cy, {"bob", 25}}, nil},
		{"add LT with a lower score", board(), ZAddArgs("cy", 1, ZAddLT), scoreResult(ZUpdated, 1), Set, []Member{{"cy", 1}, ann, bob}, nil},
		{"add GT adds a new member", board(), ZAddArgs("dee", 1, ZAddGT), scoreResult(ZAdded, 1), Set, []Member{{"dee", 1}, ann, bob, cy}, nil},
		{"a tie is ordered by member", board(), ZAddArgs("bo", 20, 0), scoreResult(ZAdded, 20), Set, []Member{ann, {"bo", 20}, bob, cy}, nil},
		{"-0 is stored as +0", &key{}, ZAddArgs("z", math.Copysign(0, -1), 0), scoreResult(ZAdded, 0), Set, []Member{{"z", 0}}, nil},
		{"the empty member", &key{}, ZAddArgs("", 1, 0), scoreResult(ZAdded, 1), Set, []Member{{"", 1}}, nil},
		{"add several", board(), ZAddManyArgs(0, Member{"dee", 5}, Member{"ann", 30}, Member{"eve", 1}), appendU(nil, 2), Set,
			[]Member{{"eve", 1}, {"dee", 5}, bob, cy, {"ann", 30}}, nil},
		{"add several: a member twice takes the last", &key{}, ZAddManyArgs(0, Member{"a", 1}, Member{"a", 2}), appendU(nil, 1), Set,
			[]Member{{"a", 2}}, nil},
		{"add several NX", board(), ZAddManyArgs(ZAddNX, Member{"ann", 1}, Member{"dee", 2}), appendU(nil, 1), Set,
			[]Member{{"dee", 2}, ann, bob, cy}, nil},
		{"add several, each unchanged", board(), ZAddManyArgs(0, ann, bob), appendU(nil, 0), Unchanged, []Member{ann, bob, cy}, nil},
		{"add several with a NaN changes nothing", board(), ZAddManyArgs(0, Member{"dee", 5}, Member{"ann", math.NaN()}), nil, Unchanged, nil, ErrBadArgs},
		{"add several of none", board(), ZAddManyArgs(0), nil, Unchanged, nil, ErrBadArgs},
		{"add several, a count beyond the bytes", board(), ZAddManyArgs(0, ann)[:3], nil, Unchanged, nil, ErrBadArgs},
		{"add NaN", board(), ZAddArgs("ann", math.NaN(), 0), nil, Unchanged, nil, ErrBadArgs},
		{"add +Inf", board(), ZAddArgs("ann", inf, 0), nil, Unchanged, nil, ErrBadArgs},
		{"add -Inf", board(), ZAddArgs("ann", -inf, 0), nil, Unchanged, nil, ErrBadArgs},
		{"add NX XX", board(), ZAddArgs("ann", 1, ZAddNX|ZAddXX), nil, Unchanged, nil, ErrBadArgs},
		{"add GT LT", board(), ZAddArgs("ann", 1, ZAddGT|ZAddLT), nil, Unchanged, nil, ErrBadArgs},
		{"add unknown flag", board(), ZAddArgs("ann", 1, 0x10), nil, Unchanged, nil, ErrBadArgs},
		{"incr a new member", board(), ZIncrArgs("dee", 5), scoreResult(ZAdded, 5), Set, []Member{{"dee", 5}, ann, bob, cy}, nil},
		{"incr moves a member up", board(), ZIncrArgs("ann", 15), scoreResult(ZUpdated, 25), Set, []Member{bob, cy, {"ann", 25}}, nil},
		{"incr moves a member down", board(), ZIncrArgs("cy", -15), scoreResult(ZUpdated, 5), Set, []Member{{"cy", 5}, ann, bob}, nil},
		{"incr by 0", board(), ZIncrArgs("cy", 0), scoreResult(ZUnchanged, 20), Unchanged, []Member{ann, bob, cy}, nil},
		{"incr into a tie", board(), ZIncrArgs("ann", 10), scoreResult(ZUpdated, 20), Set, []Member{{"ann", 20}, bob, cy}, nil},
		{"incr to overflow", zsetOf(t, Member{"m", math.MaxFloat64}), ZIncrArgs("m", math.MaxFloat64), nil, Unchanged, nil, ErrBadArgs},
		{"incr NaN", board(), ZIncrArgs("ann", math.NaN()), nil, Unchanged, nil, ErrBadArgs},
		{"rank ascending", board(), ZRankArgs("bob", false), rankResult(1, 20), Unchanged, []Member{ann, bob, cy}, nil},
		{"rank descending", board(), ZRankArgs("ann", true), rankResult(2, 10), Unchanged, []Member{ann, bob, cy}, nil},
		{"rank of a missing member", board(), ZRankArgs("zed", false), []byte{0}, Unchanged, []Member{ann, bob, cy}, nil},
		{"rank on a missing key", &key{}, ZRankArgs("zed", false), []byte{0}, Unchanged, nil, nil},
		{"rank bad order", board(), append([]byte{ZSetCmdRank, 2}, appendString(nil, "ann")...), nil, Unchanged, nil, ErrBadArgs},
		{"top 2", board(), ZTopArgs(2), membersResult(cy, bob), Unchanged, []Member{ann, bob, cy}, nil},
		{"top more than there are", board(), ZTopArgs(1 << 60), membersResult(cy, bob, ann), Unchanged, []Member{ann, bob, cy}, nil},
		{"top 0", board(), ZTopArgs(0), membersResult(), Unchanged, []Member{ann, bob, cy}, nil},
		{"range by score", board(), ZRangeArgs(10, 20, 0, 0, 0), membersResult(ann, bob, cy), Unchanged, []Member{ann, bob, cy}, nil},
		{"range exclusive min", board(), ZRangeArgs(10, 20, ZRangeMinExclusive, 0, 0), membersResult(bob, cy), Unchanged, []Member{ann, bob, cy}, nil},
		{"range exclusive max", board(), ZRangeArgs(10, 20, ZRangeMaxExclusive, 0, 0), membersResult(ann), Unchanged, []Member{ann, bob, cy}, nil},
		{"range descending with limit", board(), ZRangeArgs(-inf, inf, ZRangeDescending, 0, 2), membersResult(cy, bob), Unchanged, []Member{ann, bob, cy}, nil},
		{"range offset", board(), ZRangeArgs(-inf, inf, 0, 1, 1), membersResult(bob), Unchanged, []Member{ann, bob, cy}, nil},
		{"range offset past the end", board(), ZRangeArgs(-inf, inf, 0, 1<<62, 0), membersResult(), Unchanged, []Member{ann, bob, cy}, nil},
		{"range min above max", board(), ZRangeArgs(20, 10, 0, 0, 0), membersResult(), Unchanged, []Member{ann, bob, cy}, nil},
		{"range NaN", board(), ZRangeArgs(math.NaN(), 10, 0, 0, 0), nil, Unchanged, nil, ErrBadArgs},
		{"range unknown flag", board(), ZRangeArgs(0, 10, 0x80, 0, 0), nil, Unchanged, nil, ErrBadArgs},
		{"rem", board(), ZRemArgs("bob", "zed", "bob"), appendU(nil, 1), Set, []Member{ann, cy}, nil},
		{"rem two", board(), ZRemArgs("cy", "ann"), appendU(nil, 2), Set, []Member{bob}, nil},
		{"rem missing", board(), ZRemArgs("zed"), appendU(nil, 0), Unchanged, []Member{ann, bob, cy}, nil},
		{"rem all deletes the key", board(), ZRemArgs("ann", "bob", "cy"), appendU(nil, 3), Delete, nil, nil},
		{"rem nothing", board(), ZRemArgs(), nil, Unchanged, nil, ErrBadArgs},
		{"card", board(), ZCardArgs(), appendU(nil, 3), Unchanged, []Member{ann, bob, cy}, nil},
		{"card of a missing key", &key{}, ZCardArgs(), appendU(nil, 0), Unchanged, nil, nil},
		{"unknown sub-command", board(), []byte{'?'}, nil, Unchanged, nil, ErrBadArgs},
		{"truncated score", board(), []byte{ZSetCmdIncr, 1, 2, 3}, nil, Unchanged, nil, ErrBadArgs},
		{"a list value", listOf(t, "a"), ZCardArgs(), nil, Unchanged, nil, ErrWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bytes.Clone(tt.key.value)
			res, act, err := tt.key.do(t, ZSet, tt.args)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(res, tt.result) || act != tt.action {
				t.Fatalf("result %x, %v; want %x, %v", res, act, tt.result, tt.action)
			}
			if act == Unchanged && !bytes.Equal(tt.key.value, before) {
				t.Fatal("unchanged, but the value changed")
			}
			if !tt.key.exists {
				if len(tt.after) > 0 {
					t.Fatalf("key gone, want %v", tt.after)
				}
				return
			}
			got, err := DecodeZSet(tt.key.value)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMembers(got, tt.after) {
				t.Fatalf("zset holds %v, want %v", got, tt.after)
			}
		})
	}
}

// equalMembers compares scores by their bits, so -0 and +0 differ.
func equalMembers(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || math.Float64bits(a[i].Score) != math.Float64bits(b[i].Score) {
			return false
		}
	}
	return true
}

func TestZSetGolden(t *testing.T) {
	want := []byte{
		0x03,                   // format: zset v1
		0x00, 0x00, 0x00, 0x02, // n = 2
		0x00, 0x00, 0x00, 0x00, // member 0 ("ann") at 0
		0x00, 0x00, 0x00, 0x0b, // member 1 ("bob") at 11
		0x00, 0x00, 0x00, 0x01, // lowest score: member 1
		0x00, 0x00, 0x00, 0x00, // then member 0
		0x40, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 'a', 'n', 'n', // 100.0, "ann"
		0xc0, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 'b', 'o', 'b', // -5.0, "bob"
	}
	got := encoded(t)(EncodeZSet(nil, []Member{{"bob", -5}, {"ann", 100}}))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n%x, want\n%x", got, want)
	}
}

// TestZSetAddManyOverTheLimitChangesNothing: an add of several whose second member takes the
// value over MaxValue takes back the first (the helper checks that the value is as before).
func TestZSetAddManyOverTheLimitChangesNothing(t *testing.T) {
	forModes(t, ZSetType, func(t *testing.T, k *key) {
		k.must(t, ZSet, ZAddArgs("ann", 1, 0))
		k.lim = Limits{MaxValue: len(k.value) + zEntrySize([]byte("bob"))}
		_, _, err := k.do(t, ZSet, ZAddManyArgs(0, Member{"bob", 2}, Member{"cy", 3}))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if res, _ := k.must(t, ZSet, ZCardArgs()); count(t, res) != 1 {
			t.Fatalf("card %d after a refused add, want 1", count(t, res))
		}
	})
}
