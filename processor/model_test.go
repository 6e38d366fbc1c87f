package processor

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The model tests run random sequences of sub-commands against a plain Go model of each
// type, comparing every result, and check after every call that the value is canonical (its
// full decoder accepts it and re-encoding gives the same bytes) and holds what the model
// holds. Each runs twice: on encoded values (the Func), and on one live value kept across the
// calls as the stage keeps it (CallLive), taking back every fifth change with Undo and doing it
// again.

const modelSteps = 3000

func TestHashModel(t *testing.T) {
	forModes(t, HashType, testHashModel)
}

func testHashModel(t *testing.T, k *key) {
	rng := rand.New(rand.NewPCG(1, 18))
	model := map[string][]byte{}
	names := []string{"", "a", "b", "coins", "level", "name", "z", "zz"}
	pick := func() string { return names[rng.IntN(len(names))] }
	for step := range modelSteps {
		var args []byte
		var want []byte
		switch op := rng.IntN(5); op {
		case 0:
			var fields []Field
			added := map[string]bool{}
			for range 1 + rng.IntN(4) {
				f := Field{Name: pick(), Value: []byte(fmt.Sprint(rng.IntN(3)))}
				fields = append(fields, f)
				if _, ok := model[f.Name]; !ok {
					added[f.Name] = true
				}
			}
			for _, f := range fields {
				model[f.Name] = f.Value
			}
			args, want = HashSetArgs(fields...), appendU(nil, uint64(len(added)))
		case 1, 2:
			var ns []string
			for range rng.IntN(4) + op - 1 {
				ns = append(ns, pick())
			}
			if op == 1 {
				args, want = HashGetArgs(ns...), appendU(nil, uint64(len(ns)))
				for _, n := range ns {
					if v, ok := model[n]; ok {
						want = appendBytes(append(want, 1), v)
					} else {
						want = append(want, 0)
					}
				}
			} else {
				removed := 0
				for _, n := range slices.Compact(slices.Sorted(slices.Values(ns))) {
					if _, ok := model[n]; ok {
						removed++
						delete(model, n)
					}
				}
				args, want = HashDelArgs(ns...), appendU(nil, uint64(removed))
			}
		case 3:
			args, want = HashGetAllArgs(), appendU(nil, uint64(len(model)))
			for _, n := range slices.Sorted(maps.Keys(model)) {
				want = appendBytes(appendString(want, n), model[n])
			}
		case 4:
			args, want = HashLenArgs(), appendU(nil, uint64(len(model)))
		}
		res, _ := k.must(t, Hash, args)
		if !bytes.Equal(res, want) {
			t.Fatalf("step %d, args %x: result %x, want %x", step, args, res, want)
		}
		checkHash(t, k, model)
	}
}

func checkHash(tb testing.TB, k *key, model map[string][]byte) {
	tb.Helper()
	if k.exists != (len(model) > 0) {
		tb.Fatalf("key exists %v with %d fields", k.exists, len(model))
	}
	if !k.exists {
		return
	}
	fields, err := DecodeHash(k.value)
	if err != nil {
		tb.Fatal(err)
	}
	again := encoded(tb)(EncodeHash(nil, fields))
	if !bytes.Equal(again, k.value) {
		tb.Fatalf("value %x re-encodes as %x", k.value, again)
	}
	got := map[string][]byte{}
	for _, f := range fields {
		got[f.Name] = f.Value
	}
	if !maps.EqualFunc(got, model, bytes.Equal) {
		tb.Fatalf("hash holds %q, want %q", got, model)
	}
}

func TestListModel(t *testing.T) {
	forModes(t, ListType, testListModel)
}

func testListModel(t *testing.T, k *key) {
	rng := rand.New(rand.NewPCG(2, 18))
	model := [][]byte{}
	idx := func() int64 { return int64(rng.IntN(17) - 8) }
	for step := range modelSteps {
		var args, want []byte
		switch rng.IntN(5) {
		case 0, 1:
			left, capacity := rng.IntN(2) == 0, uint64(rng.IntN(7))
			var elems [][]byte
			for range 1 + rng.IntN(3) {
				elems = append(elems, []byte(fmt.Sprint(step, "-", len(elems)))[:rng.IntN(4)])
			}
			model = modelPush(model, left, capacity, elems)
			args, want = ListPushArgs(left, capacity, elems...), appendU(nil, uint64(len(model)))
		case 2:
			start, stop := idx(), idx()
			args, want = ListRangeArgs(start, stop), modelRange(model, start, stop)
		case 3:
			start, stop := idx(), idx()
			from, to := listRange(len(model), start, stop)
			model = slices.Clone(model[from:to])
			args, want = ListTrimArgs(start, stop), appendU(nil, uint64(len(model)))
		case 4:
			args, want = ListLenArgs(), appendU(nil, uint64(len(model)))
		}
		res, _ := k.must(t, List, args)
		if !bytes.Equal(res, want) {
			t.Fatalf("step %d, args %x: result %x, want %x", step, args, res, want)
		}
		checkList(t, k, model)
	}
}

func modelPush(model [][]byte, left bool, capacity uint64, elems [][]byte) [][]byte {
	for _, e := range elems {
		if left {
			model = append([][]byte{e}, model...)
		} else {
			model = append(model, e)
		}
	}
	if capacity > 0 && uint64(len(model)) > capacity {
		if left {
			model = model[:capacity]
		} else {
			model = model[uint64(len(model))-capacity:]
		}
	}
	return slices.Clone(model)
}

// modelRange is Redis's LRANGE, written independently of listRange.
func modelRange(model [][]byte, start, stop int64) []byte {
	var got [][]byte
	n := int64(len(model))
	for i := range n {
		if (i >= start || i >= start+n) && (i <= stop || (stop < 0 && i <= stop+n)) && (start >= 0 || i >= start+n) {
			got = append(got, model[i])
		}
	}
	res := appendU(nil, uint64(len(got)))
	for _, e := range got {
		res = appendBytes(res, e)
	}
	return res
}

func checkList(tb testing.TB, k *key, model [][]byte) {
	tb.Helper()
	if k.exists != (len(model) > 0) {
		tb.Fatalf("key exists %v with %d elements", k.exists, len(model))
	}
	if !k.exists {
		return
	}
	elems, err := DecodeList(k.value)
	if err != nil {
		tb.Fatal(err)
	}
	if again := encoded(tb)(EncodeList(nil, elems)); !bytes.Equal(again, k.value) {
		tb.Fatalf("value %x re-encodes as %x", k.value, again)
	}
	if !slices.EqualFunc(elems, model, bytes.Equal) {
		tb.Fatalf("list holds %q, want %q", elems, model)
	}
}

func TestZSetModel(t *testing.T) {
	forModes(t, ZSetType, testZSetModel)
}

func testZSetModel(t *testing.T, k *key) {
	rng := rand.New(rand.NewPCG(3, 18))
	model := map[string]float64{}
	names := []string{"", "ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"}
	pick := func() string { return names[rng.IntN(len(names))] }
	score := func() float64 { return float64(rng.IntN(7)-3) / float64(1+rng.IntN(2)) }
	flagSets := []byte{0, ZAddNX, ZAddXX, ZAddGT, ZAddLT, ZAddXX | ZAddGT, ZAddXX | ZAddLT}
	for step := range modelSteps {
		var args, want []byte
		switch rng.IntN(8) {
		case 0:
			m, s, fl := pick(), score(), flagSets[rng.IntN(len(flagSets))]
			args, want = ZAddArgs(m, s, fl), modelAdd(model, m, s, fl, false)
		case 1:
			m, d := pick(), score()
			args, want = ZIncrArgs(m, d), modelAdd(model, m, d, 0, true)
		case 2:
			m, desc := pick(), rng.IntN(2) == 0
			args, want = ZRankArgs(m, desc), modelRank(model, m, desc)
		case 3:
			n := uint64(rng.IntN(12))
			args, want = ZTopArgs(n), modelRangeBy(model, math.Inf(-1), math.Inf(1), ZRangeDescending, 0, n)
		case 4:
			lo, hi := score(), score()
			if rng.IntN(8) == 0 {
				lo = math.Inf(-1)
			}
			fl, off, lim := byte(rng.IntN(8)), uint64(rng.IntN(3)), uint64(rng.IntN(4))
			args = ZRangeArgs(lo, hi, fl, off, lim)
			if lim == 0 {
				lim = math.MaxUint64
			}
			want = modelRangeBy(model, lo, hi, fl, off, lim)
		case 5:
			var ms []string
			for range 1 + rng.IntN(3) {
				ms = append(ms, pick())
			}
			removed := 0
			for _, m := range slices.Compact(slices.Sorted(slices.Values(ms))) {
				if _, ok := model[m]; ok {
					removed++
					delete(model, m)
				}
			}
			args, want = ZRemArgs(ms...), appendU(nil, uint64(removed))
		default:
			args, want = ZCardArgs(), appendU(nil, uint64(len(model)))
		}
		res, _ := k.must(t, ZSet, args)
		if !bytes.Equal(res, want) {
			t.Fatalf("step %d, args %x: result %x, want %x (model %v)", step, args, res, want, model)
		}
		checkZSet(t, k, model)
	}
}

func modelAdd(model map[string]float64, m string, s float64, flags byte, incr bool) []byte {
	old, ok := model[m]
	switch {
	case !ok && flags&ZAddXX != 0:
		return appendF64([]byte{ZAbsent}, 0)
	case !ok:
		model[m] = s + 0
		return appendF64([]byte{ZAdded}, s+0)
	}
	if incr {
		s += old
	}
	if flags&ZAddNX != 0 || s == old || flags&ZAddGT != 0 && s <= old || flags&ZAddLT != 0 && s >= old {
		return appendF64([]byte{ZUnchanged}, old)
	}
	model[m] = s + 0
	return appendF64([]byte{ZUpdated}, s+0)
}

func modelSorted(model map[string]float64) []Member {
	var ms []Member
	for n, s := range model {
		ms = append(ms, Member{n, s})
	}
	slices.SortFunc(ms, func(a, b Member) int {
		if c := cmp.Compare(a.Score, b.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return ms
}

func modelRank(model map[string]float64, m string, desc bool) []byte {
	ms := modelSorted(model)
	for i, e := range ms {
		if e.Name == m {
			if desc {
				i = len(ms) - 1 - i
			}
			return appendF64(appendU([]byte{1}, uint64(i)), e.Score)
		}
	}
	return []byte{0}
}

func modelRangeBy(model map[string]float64, lo, hi float64, flags byte, offset, limit uint64) []byte {
	var got []Member
	for _, e := range modelSorted(model) {
		okLo := e.Score > lo || flags&ZRangeMinExclusive == 0 && e.Score == lo
		okHi := e.Score < hi || flags&ZRangeMaxExclusive == 0 && e.Score == hi
		if okLo && okHi {
			got = append(got, e)
		}
	}
	if flags&ZRangeDescending != 0 {
		slices.Reverse(got)
	}
	got = got[min(offset, uint64(len(got))):]
	got = got[:min(limit, uint64(len(got)))]
	res := appendU(nil, uint64(len(got)))
	for _, e := range got {
		res = appendF64(appendString(res, e.Name), e.Score)
	}
	return res
}

func checkZSet(tb testing.TB, k *key, model map[string]float64) {
	tb.Helper()
	if k.exists != (len(model) > 0) {
		tb.Fatalf("key exists %v with %d members", k.exists, len(model))
	}
	if !k.exists {
		return
	}
	ms, err := DecodeZSet(k.value)
	if err != nil {
		tb.Fatal(err)
	}
	if again := encoded(tb)(EncodeZSet(nil, ms)); !bytes.Equal(again, k.value) {
		tb.Fatalf("value %x re-encodes as %x", k.value, again)
	}
	if want := modelSorted(model); !slices.Equal(ms, want) {
		tb.Fatalf("zset holds %v, want %v", ms, want)
	}
}
