//go:build linux

package kcpnet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// BenchmarkRoundTrip: ping round trips against a bare network stage in a process of its own,
// through this engine (kcpnet: the loop sleeps in Go's netpoller; kcpnet-blocking: in
// epoll_wait, with and without LockOSThread) and through kcp-go's
// UDPSession as the SDK uses it today (one per conversation, a reader goroutine each), in the
// same run. Reported per round trip: datagrams both ways (counted by the client side), the
// client's CPU (this process: the engine or kcp-go, plus the benchmark's callers), the server
// process's CPU, and for the engine its system calls and loop wake-ups.
//
//	go test -run '^$' -bench RoundTrip -benchtime 2s ./client/kcpnet/
func BenchmarkRoundTrip(b *testing.B) {
	srv := startServerProcess(b)
	for _, conns := range []int{1, 50} {
		for _, inflight := range []int{1, 16} {
			for _, impl := range []string{"kcpnet", "kcpnet-blocking", "kcpnet-blocking-locked", "udpsession"} {
				name := fmt.Sprintf("conns=%d/inflight=%d/impl=%s", conns, inflight, impl)
				b.Run(name, func(b *testing.B) { benchRoundTrip(b, srv, impl, conns, inflight) })
			}
		}
	}
}

// caller is one conversation's request function, whichever transport carries it.
type caller func(ctx context.Context) error

func benchRoundTrip(b *testing.B, srv *serverProcess, impl string, conns, inflight int) {
	var (
		calls     []caller
		datagrams func() uint64
		engine    *Engine
	)
	switch impl {
	case "kcpnet", "kcpnet-blocking", "kcpnet-blocking-locked":
		engine = newTestEngine(b, Config{BlockingWait: impl != "kcpnet", LockOSThread: impl == "kcpnet-blocking-locked"})
		for range conns {
			r, _ := dialRPC(b, engine, srv.addr, DialOptions{})
			calls = append(calls, pinger(r))
		}
		datagrams = func() uint64 { st := engine.Stats(); return st.DatagramsIn + st.DatagramsOut }
	case "udpsession":
		for range conns {
			calls = append(calls, pinger(dialUDPSession(b, srv.addr.String())))
		}
		datagrams = func() uint64 { s := kcp.DefaultSnmp.Copy(); return s.InPkts + s.OutPkts }
	}
	ctx := context.Background()
	for _, call := range calls { // warm up: every conversation past the server's pending state
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var st0 Stats
	if engine != nil {
		st0 = engine.Stats()
	}
	d0, cpu0, srv0 := datagrams(), selfCPU(), srv.cpu()
	b.ReportAllocs()
	b.ResetTimer()
	lat := runCallers(b, calls, inflight)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(datagrams()-d0)/n, "datagrams/op")
	b.ReportMetric(float64((selfCPU()-cpu0).Microseconds())/n, "client-µs/op")
	b.ReportMetric(float64((srv.cpu()-srv0).Microseconds())/n, "server-µs/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	if engine != nil {
		st := engine.Stats()
		// Counted: recvmmsg, sendmmsg, epoll_wait on the engine's fd, eventfd writes and reads;
		// not counted: the Go netpoller's own epoll_wait and futex calls.
		sys := st.RecvCalls + st.SendCalls + st.EpollWaits + 2*st.Wakeups -
			(st0.RecvCalls + st0.SendCalls + st0.EpollWaits + 2*st0.Wakeups)
		b.ReportMetric(float64(sys)/n, "syscalls/op")
		b.ReportMetric(float64(st.LoopWakes-st0.LoopWakes)/n, "loopwakes/op")
	}
}

// runCallers runs b.N calls spread over inflight goroutines per conversation and returns the
// latency of each.
func runCallers(b *testing.B, calls []caller, inflight int) []time.Duration {
	workers := len(calls) * inflight
	lat := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		lat[w] = make([]time.Duration, 0, n)
		call := calls[w%len(calls)]
		wg.Go(func() {
			ctx := context.Background()
			for range n {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		all = append(all, 0)
	}
	return all
}

func pinger(r *rpc) caller {
	return func(ctx context.Context) error {
		_, err := r.call(ctx, task.OpPing, nil)
		return err
	}
}

// dialUDPSession opens a kcp-go UDPSession the way the SDK does today (client/dial_linux.go
// and Client.connect): a connected UDP socket, stream mode, fast mode, windows of 256, ACKs
// not forced, 4 MiB buffers; a reader goroutine cuts frames and matches replies; writes are
// serialised, one Write per frame.
func dialUDPSession(tb testing.TB, addr string) *rpc {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		tb.Fatal(err)
	}
	var conv [4]byte
	rand.Read(conv[:])
	s, err := kcp.NewConn4(binary.LittleEndian.Uint32(conv[:]), raddr, nil, 0, 0, true, conn)
	if err != nil {
		tb.Fatal(err)
	}
	s.SetStreamMode(true)
	s.SetNoDelay(1, 10, 2, 1)
	s.SetWindowSize(256, 256)
	s.SetACKNoDelay(false)
	s.SetReadBuffer(4 << 20)
	s.SetWriteBuffer(4 << 20)
	r := newRPC()
	var wmu sync.Mutex
	r.send = func(frame []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := s.Write(frame)
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var sp wire.Splitter
		for {
			n, err := s.Read(sp.Buffer(64 << 10))
			if err != nil {
				return
			}
			sp.Commit(n)
			for body, _ := sp.Next(); body != nil; body, _ = sp.Next() {
				r.frame(body)
			}
		}
	})
	tb.Cleanup(func() { s.Close(); wg.Wait() })
	return r
}

// BenchmarkIdleConnMemory reports the heap each idle conversation holds, with 10,000 open on
// one engine after one round trip each (the server in its own process, so its heap is not
// counted), without and with idle compaction (Config.CompactAfter), and the goroutines they
// cost.
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./client/kcpnet/
func BenchmarkIdleConnMemory(b *testing.B) {
	srv := startServerProcess(b)
	for _, compact := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			for range b.N {
				benchIdleMemory(b, srv, compact)
			}
		})
	}
}

func benchIdleMemory(b *testing.B, srv *serverProcess, compact time.Duration) {
	const n = 10_000
	e := newTestEngine(b, Config{CompactAfter: compact})
	defer e.Close()
	h := &countReplies{all: make(chan struct{}), want: n}
	ping, err := wire.AppendFrame(nil, &wire.Header{V: wire.Version, Op: task.OpPing, ID: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	before, goroutines := heapInUse(), runtime.NumGoroutine()
	cs := make([]*Conn, n) // the owner's pointer: counted, 8 bytes each
	for i := range cs {
		if cs[i], err = e.DialAddrPort(srv.addr, DialOptions{Handler: h}); err != nil {
			b.Fatal(err)
		}
	}
	dialled := heapInUse()
	for _, c := range cs {
		if err := c.Send(ping); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-h.all:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d replies", h.n.Load(), n)
	}
	if compact > 0 {
		pctest.WaitFor(b, func() bool { return e.Stats().Compacted == n }, "%d conversations never all compacted", n)
	} else {
		waitIdle(b, e)
	}
	after := heapInUse()
	if f := os.Getenv("KCPNET_HEAPPROFILE"); f != "" {
		out, _ := os.Create(f)
		pprof.WriteHeapProfile(out)
		out.Close()
	}
	b.ReportMetric(float64(dialled-before)/n, "B/conn-dialled")
	b.ReportMetric(float64(after-before)/n, "B/conn-idle")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/conn")
	runtime.KeepAlive(cs)
}

// countReplies is one handler shared by every conversation: it counts replies.
type countReplies struct {
	n    atomic.Int64
	want int64
	all  chan struct{}
}

func (h *countReplies) Frame(*Conn, []byte) {
	if h.n.Add(1) == h.want {
		close(h.all)
	}
}

func (h *countReplies) Closed(*Conn, error) {}

// waitIdle waits until no conversation has a timer: everything acknowledged, no ACK held.
func waitIdle(tb testing.TB, e *Engine) {
	pctest.WaitFor(tb, func() bool {
		var timers int
		e.onLoop(func() { timers = e.lp.wheel.Len() })
		return timers == 0
	}, "the engine never went idle: a timer stayed set")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
