package tests

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// BenchmarkPing measures round trips through three servers in the same run, with the same
// sessions and requests in flight: pipecached's Incoming stage, kcp-go's own listener echoing
// bytes back (the SDK's ping frame echoed is a valid reply, so the same SDK drives both), and a
// plain UDP echo. Client and server share the machine's cores.
//
// Metrics: ns/op is wall time per round trip over all callers (so ops/s = 1e9 / ns/op);
// p50/p99 are per-request latencies; datagrams/op counts both directions; udp-drops are the
// kernel's receive-buffer errors during the run; server-busy-ns/op is the Incoming loop's time
// awake per request (pipecache only).
func BenchmarkPing(b *testing.B) {
	for _, impl := range []string{"pipecache", "kcp-go", "udp"} {
		for _, sessions := range []int{1, 50, 200} {
			for _, inflight := range []int{1, 16} {
				name := fmt.Sprintf("impl=%s/sessions=%d/inflight=%d", impl, sessions, inflight)
				b.Run(name, func(b *testing.B) { benchPing(b, impl, sessions, inflight) })
			}
		}
	}
}

func benchPing(b *testing.B, impl string, sessions, inflight int) {
	var (
		addr     string
		datagram func() uint64 // datagrams both ways so far
		busy     func() time.Duration
	)
	switch impl {
	case "pipecache":
		in := startBareIncoming(b, transport.Config{})
		addr = in.Addr().String()
		datagram = func() uint64 { st := in.Stats().Transport; return st.DatagramsIn + st.DatagramsOut }
		busy = func() time.Duration { return in.Loop().Stats().Busy }
	case "kcp-go":
		addr = startKCPEcho(b)
		datagram = func() uint64 { return kcp.DefaultSnmp.Copy().InPkts } // every receiver is in this process
	case "udp":
		addr = startUDPEcho(b)
		datagram = func() uint64 { return 0 }
	}

	callers := make([]func() error, 0, sessions*inflight)
	for range sessions {
		if impl == "udp" {
			for range inflight {
				callers = append(callers, udpCaller(b, addr))
			}
			continue
		}
		c, err := client.Dial(addr, client.WithHeartbeat(time.Second, time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for range inflight {
			callers = append(callers, func() error { return c.Ping(context.Background()) })
		}
	}

	drops0, dgrams0 := udpRcvbufErrors(), datagram()
	var busy0 time.Duration
	if busy != nil {
		busy0 = busy()
	}
	lat := make([][]time.Duration, len(callers))
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, call := range callers {
		n := b.N / len(callers)
		if i < b.N%len(callers) {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		wg.Go(func() {
			for range n {
				t0 := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()

	reportLatency(b, lat)
	if impl == "udp" {
		b.ReportMetric(2, "datagrams/op")
	} else {
		b.ReportMetric(float64(datagram()-dgrams0)/float64(b.N), "datagrams/op")
	}
	b.ReportMetric(float64(udpRcvbufErrors()-drops0), "udp-drops")
	if busy != nil {
		b.ReportMetric(float64(busy()-busy0)/float64(b.N), "server-busy-ns/op")
	}
}

// startKCPEcho runs kcp-go's listener with one goroutine per session copying what it reads
// back, in the same fast mode pipecache uses.
func startKCPEcho(b *testing.B) string {
	l, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	l.SetReadBuffer(4 << 20)
	l.SetWriteBuffer(4 << 20)
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				return
			}
			s.SetNoDelay(1, 10, 2, 1)
			s.SetWindowSize(256, 256)
			s.SetStreamMode(true)
			go func() {
				defer s.Close()
				io.Copy(s, s)
			}()
		}
	}()
	return l.Addr().String()
}

// startUDPEcho runs a plain UDP echo: two goroutines reading and writing back.
func startUDPEcho(b *testing.B) string {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	b.Cleanup(func() { conn.Close() })
	for range 2 {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				conn.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	return conn.LocalAddr().String()
}

// udpCaller sends a ping-sized datagram and waits for its echo, resending after a loss.
func udpCaller(b *testing.B, addr string) func() error {
	ua, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	msg := append(make([]byte, 24), frame...) // same size as a KCP segment carrying a ping
	buf := make([]byte, 2048)
	var seq uint64
	return func() error {
		seq++
		binary.LittleEndian.PutUint64(msg, seq)
		for {
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				n, err := conn.Read(buf)
				if err != nil {
					break // lost: resend
				}
				if n >= 8 && binary.LittleEndian.Uint64(buf) == seq {
					return nil
				}
			}
		}
	}
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a full receive buffer.
func udpRcvbufErrors() uint64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.ParseUint(fields[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// BenchmarkIdleSessions opens 10,000 conversations (low-level KCP from one client socket, one
// ping each), lets the client side go, and reports the server's heap per conversation and the
// Incoming loop's busy time per idle conversation per second.
func BenchmarkIdleSessions(b *testing.B) {
	const n = 10_000
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		in := startBareIncoming(b, transport.Config{MaxPending: 2 * n, PendingRate: 1 << 20})
		openConversations(b, in.Addr().String(), n)
		deadline := time.Now().Add(time.Minute)
		for in.Stats().Transport.Conns < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := in.Stats().Transport.Conns; got < n {
			b.Fatalf("only %d of %d conversations open", got, n)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/session")

		busy0, t0 := in.Loop().Stats().Busy, time.Now()
		time.Sleep(3 * time.Second) // idle on purpose: this measures what idleness costs
		busy := in.Loop().Stats().Busy - busy0
		b.ReportMetric(float64(busy)/time.Since(t0).Seconds()/n, "busy-ns/session/s")
		in.Stop(context.Background())
	}
}

// openConversations sends one ping on each of n conversations from one UDP socket, reads the
// replies and ACKs them (so the server has nothing in flight: the sessions are idle, not
// vanished), then drops the client side.
func openConversations(b *testing.B, addr string, n int) {
	ua, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(8 << 20)
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: 1, ID: 1}, nil)
	ks := make(map[uint32]*kcp.KCP, n)
	for conv := range uint32(n) {
		k := kcp.NewKCP(conv+1, func(buf []byte, size int) { conn.Write(buf[:size]) })
		k.NoDelay(1, 10, 2, 1)
		k.Send(frame)
		k.Update()
		ks[conv+1] = k
	}
	answered := map[uint32]bool{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(time.Minute)
	for len(answered) < n && time.Now().Before(deadline) {
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		m, err := conn.Read(buf)
		if err != nil {
			for conv, k := range ks {
				if !answered[conv] {
					k.Update() // retransmit what was lost
				}
			}
			continue
		}
		conv := binary.LittleEndian.Uint32(buf)
		if k := ks[conv]; k != nil {
			k.Input(buf[:m], kcp.IKCP_PACKET_REGULAR, true) // ACK at once
			if k.PeekSize() > 0 {
				answered[conv] = true
			}
		}
	}
	if len(answered) < n {
		b.Fatalf("only %d of %d conversations answered", len(answered), n)
	}
}

// BenchmarkClientCost reports what one SDK connection costs on the client: heap bytes and
// goroutines, measured over 100 connections to one server.
func BenchmarkClientCost(b *testing.B) {
	const n = 100
	in := startBareIncoming(b, transport.Config{})
	var err error
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		clients := make([]*client.Client, n)
		for i := range clients {
			if clients[i], err = client.Dial(in.Addr().String()); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
		for _, c := range clients {
			c.Close()
		}
	}
}
