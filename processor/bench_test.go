package processor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks of one call, in size families, two ways: "live", on a value decoded once and kept,
// as CachePrc runs the built-ins (CallLive; each change applied, as on the server), and
// "encoded", the Func on encoded bytes (Call: decode, run, encode; the new value not applied, so
// the value is the same at every iteration). Each figure is the processor's cost alone: what
// CachePrc's loop spends in it (for live values, plus one AppendEncoded per store commit:
// BenchmarkZSetEncode). 100k members need -max-value of 4 MiB: the limits here allow it.

var benchLimits = Limits{MaxValue: 4 << 20}

func benchZSet(b *testing.B, n int) ([]byte, []string) {
	b.Helper()
	names := make([]string, n)
	ms := make([]Member, n)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range ms {
		names[i] = fmt.Sprintf("player:%06d", i)
		ms[i] = Member{names[i], float64(rng.IntN(1_000_000))}
	}
	v, err := EncodeZSet(nil, ms)
	if err != nil {
		b.Fatal(err)
	}
	return v, names
}

var sizes = []int{100, 10_000, 100_000}

// benchCalls runs typ's calls on value with the arguments args(i) for iteration i, live and
// encoded.
func benchCalls(b *testing.B, typ Type, value []byte, args func(i int) []byte) {
	b.Helper()
	const pre = 1024 // arguments built before the timer, cycled
	all := make([][]byte, pre)
	for i := range all {
		all[i] = args(i)
	}
	b.Run("live", func(b *testing.B) {
		v, err := typ.Decode(value)
		if err != nil {
			b.Fatal(err)
		}
		out := &Output{}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := CallLive(v, Input{Exists: true, Args: all[i%pre]}, benchLimits, out); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("encoded", func(b *testing.B) {
		fn := TypeFunc(typ)
		out := &Output{}
		in := Input{Value: value, Exists: value != nil}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			in.Args = all[i%pre]
			if _, err := Call(fn, in, benchLimits, out); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(len(value)), "value-B")
	})
}

// BenchmarkZSetEncode is what a live board costs once per store commit: its encoding.
func BenchmarkZSetEncode(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			value, _ := benchZSet(b, n)
			v, err := ZSetType.Decode(value)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, len(value))
			b.ReportAllocs()
			for b.Loop() {
				dst = v.AppendEncoded(dst[:0])
			}
			b.ReportMetric(float64(len(value)), "value-B")
		})
	}
}

// BenchmarkZSetDecode is what a board costs the first time a processor runs on it in the stage
// (or after it was evicted): its decoding and full check.
func BenchmarkZSetDecode(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			value, _ := benchZSet(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ZSetType.Decode(value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkZSetIncr(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, names := benchZSet(b, n)
			rng := rand.New(rand.NewPCG(1, 2))
			benchCalls(b, ZSetType, v, func(int) []byte { return ZIncrArgs(names[rng.IntN(n)], float64(1+rng.IntN(1000))) })
		})
	}
}

func BenchmarkZSetAddNew(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, _ := benchZSet(b, n)
			rng := rand.New(rand.NewPCG(1, 3))
			benchCalls(b, ZSetType, v, func(i int) []byte { return ZAddArgs(fmt.Sprintf("new:%06d", i), float64(rng.IntN(1_000_000)), 0) })
		})
	}
}

func BenchmarkZSetRem(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, names := benchZSet(b, n)
			benchCalls(b, ZSetType, v, func(i int) []byte {
				if i%2 == 1 { // live: the member removed by the call before comes back
					return ZAddArgs(names[(i/2)%n], 1, 0)
				}
				return ZRemArgs(names[(i/2)%n])
			})
		})
	}
}

func BenchmarkZSetRank(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, names := benchZSet(b, n)
			rng := rand.New(rand.NewPCG(1, 5))
			benchCalls(b, ZSetType, v, func(int) []byte { return ZRankArgs(names[rng.IntN(n)], true) })
		})
	}
}

func BenchmarkZSetTop10(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, _ := benchZSet(b, n)
			benchCalls(b, ZSetType, v, func(int) []byte { return ZTopArgs(10) })
		})
	}
}

func BenchmarkZSetRangeByScore(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, _ := benchZSet(b, n)
			rng := rand.New(rand.NewPCG(1, 6))
			benchCalls(b, ZSetType, v, func(int) []byte {
				return ZRangeArgs(float64(rng.IntN(1_000_000)), 1e6, 0, 0, 10)
			})
		})
	}
}

// BenchmarkEncodingOf is the full check of a value alone, without building the live value:
// what the type op costs, and the part of BenchmarkZSetDecode that refuses forged values
// (issue 23, item 15).
func BenchmarkEncodingOf(b *testing.B) {
	hash, err := EncodeHash(nil, benchFields(10_000))
	if err != nil {
		b.Fatal(err)
	}
	list, err := EncodeList(nil, benchElems(10_000))
	if err != nil {
		b.Fatal(err)
	}
	values := map[string][]byte{"hash/10000": hash, "list/10000": list}
	for _, n := range sizes {
		values[fmt.Sprintf("zset/%d", n)], _ = benchZSet(b, n)
	}
	for _, name := range []string{"zset/100", "zset/10000", "zset/100000", "hash/10000", "list/10000"} {
		b.Run(name, func(b *testing.B) {
			v, want := values[name], name[:4]
			b.ReportAllocs()
			for b.Loop() {
				if got := EncodingOf(v); got != want {
					b.Fatalf("EncodingOf says %q", got)
				}
			}
			b.ReportMetric(float64(len(v)), "value-B")
		})
	}
}

func benchFields(n int) []Field {
	fs := make([]Field, n)
	for i := range fs {
		fs[i] = Field{Name: fmt.Sprintf("field:%06d", i), Value: []byte("value")}
	}
	return fs
}

func benchElems(n int) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = fmt.Appendf(nil, "event:%06d", i)
	}
	return es
}

// BenchmarkZSetClientSide is the update the way a client does it without processors: decode
// the whole value, change one score, encode it again (then CAS it, not measured here).
func BenchmarkZSetClientSide(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v, _ := benchZSet(b, n)
			rng := rand.New(rand.NewPCG(1, 7))
			b.ReportAllocs()
			var dst []byte
			for b.Loop() {
				ms, err := DecodeZSet(v)
				if err != nil {
					b.Fatal(err)
				}
				ms[rng.IntN(n)].Score++
				if dst, err = EncodeZSet(dst[:0], ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkListPush(b *testing.B) {
	for _, capacity := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("cap=%d", capacity), func(b *testing.B) {
			es := make([][]byte, capacity)
			for i := range es {
				es[i] = fmt.Appendf(nil, `{"event":%d,"kind":"login"}`, i)
			}
			v, err := EncodeList(nil, es) // full: every push drops the oldest
			if err != nil {
				b.Fatal(err)
			}
			event := []byte(`{"event":-1,"kind":"logout"}`)
			benchCalls(b, ListType, v, func(int) []byte { return ListPushArgs(true, uint64(capacity), event) })
		})
	}
}

func BenchmarkListRange10(b *testing.B) {
	es := make([][]byte, 10_000)
	for i := range es {
		es[i] = fmt.Appendf(nil, `{"event":%d}`, i)
	}
	v, err := EncodeList(nil, es)
	if err != nil {
		b.Fatal(err)
	}
	benchCalls(b, ListType, v, func(int) []byte { return ListRangeArgs(0, 9) })
}

func BenchmarkHashSet(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			fs := make([]Field, n)
			for i := range fs {
				fs[i] = Field{fmt.Sprintf("field:%04d", i), fmt.Appendf(nil, "%d", i*1000)}
			}
			v, err := EncodeHash(nil, fs)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 8))
			benchCalls(b, HashType, v, func(int) []byte {
				return HashSetArgs(Field{fs[rng.IntN(n)].Name, fmt.Appendf(nil, "%d", rng.IntN(1e9))})
			})
		})
	}
}

func BenchmarkHashGet(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			fs := make([]Field, n)
			for i := range fs {
				fs[i] = Field{fmt.Sprintf("field:%04d", i), fmt.Appendf(nil, "%d", i*1000)}
			}
			v, err := EncodeHash(nil, fs)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 9))
			benchCalls(b, HashType, v, func(int) []byte { return HashGetArgs(fs[rng.IntN(n)].Name) })
		})
	}
}
