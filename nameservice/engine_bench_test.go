package nameservice

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// benchStore is what BenchmarkCommit needs of an engine.
type benchStore interface {
	Commit([]Write) error
	Close() error
}

var benchEngines = []struct {
	name string
	open func(dir string) (benchStore, error)
}{
	{"bolt", func(dir string) (benchStore, error) { return OpenBolt(dir) }},
	{"pebble", func(dir string) (benchStore, error) { return OpenWith(dir, Options{}) }},
	{"pebble-everysec", func(dir string) (benchStore, error) { return OpenWith(dir, Options{Fsync: FsyncEverySec}) }},
	{"pebble-no", func(dir string) (benchStore, error) { return OpenWith(dir, Options{Fsync: FsyncNo}) }},
}

// BenchmarkCommit measures the set path of each engine: one op is one Commit of a
// group of writes (100-byte values over 100,000 keys already stored; with ttl=yes each write
// has a deadline, so the expiry index is kept too). It reports each commit's latency (mean,
// p50, p99), writes/s, and the process's CPU per write (getrusage: user + system, every
// goroutine of the engine's included). bolt and pebble sync every commit; pebble-everysec and
// pebble-no are Pebble with -fsync everysec and no. (Badger was compared too, at commit
// e45c7df: BENCHMARKS.md.)
//
// The engines take turns at each size, so that they are compared minutes apart at most.
func BenchmarkCommit(b *testing.B) {
	for _, ttl := range []bool{false, true} {
		for _, group := range []int{1, 16, 64} {
			for _, e := range benchEngines {
				name := fmt.Sprintf("ttl=%s/group=%d/engine=%s", map[bool]string{false: "no", true: "yes"}[ttl], group, e.name)
				b.Run(name, func(b *testing.B) { benchCommit(b, e.open, group, ttl) })
			}
		}
	}
}

func benchCommit(b *testing.B, open func(string) (benchStore, error), group int, ttl bool) {
	s, err := open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const keys = 100_000
	value := make([]byte, 100)
	ver := uint64(0)
	ws := make([]Write, 1000)
	for i := 0; i < keys; i += len(ws) {
		for j := range ws {
			ver++
			ws[j] = Write{Key: fmt.Sprintf("key:%d", i+j), Record: Record{Value: value, Version: ver}}
		}
		if err := s.Commit(ws); err != nil {
			b.Fatal(err)
		}
	}
	if p, ok := s.(*Pebble); ok {
		settlePebble(b, p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ws = ws[:group]
	var lat []time.Duration
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		expire := int64(0)
		if ttl {
			expire = time.Now().Add(time.Hour).UnixMilli() + rng.Int64N(1000)
		}
		for j := range ws {
			ver++
			ws[j] = Write{Key: fmt.Sprintf("key:%d", rng.IntN(keys)), Record: Record{Value: value, Version: ver, ExpireAt: expire}}
		}
		start := time.Now()
		if err := s.Commit(ws); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	cpu := cpuTime() - cpu0
	writes := float64(len(lat) * group)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(writes/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(cpu.Microseconds())/writes, "µs-CPU/write")
}

// settlePebble flushes the preloaded records to tables and waits for the compactions that
// follow, so that the loop does not pay for the preload.
func settlePebble(b *testing.B, p *Pebble) {
	if err := p.db.Flush(); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.db.Metrics().Compact.NumInProgress > 0; {
		if time.Now().After(deadline) {
			b.Fatal("compactions after the preload never finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuTime is the CPU the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
