package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// procStatusKB reads a field of /proc/PID/status (VmRSS, VmHWM) in KiB.
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(f)[0], 10, 64)
			return n
		}
	}
	return 0
}

// flooder is a socket on its own loopback address that sends junk and counts what comes back.
type flooder struct {
	conn           *net.UDPConn
	sent, received atomic.Int64
	done           chan struct{}
}

func newFlooder(b *testing.B, server *net.UDPAddr) *flooder {
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, server)
	if err != nil {
		b.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	conn.SetReadBuffer(8 << 20)
	f := &flooder{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return
				}
				continue // ECONNREFUSED and friends
			}
			f.received.Add(int64(n))
		}
	}()
	return f
}

func (f *flooder) write(b []byte) {
	if n, err := f.conn.Write(b); err == nil {
		f.sent.Add(int64(n))
	}
}

// stop waits for late replies, then closes the socket.
func (f *flooder) stop() {
	f.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	<-f.done
	f.conn.Close()
}

// floods: each sends for about d from one address, bounded in count.
var floods = map[string]func(f *flooder, d time.Duration){
	// The flood: a few conversations streaming 18-byte frames nobody can read, as raw
	// segments with increasing sequence numbers (a KCP client would stall without ACKs).
	"junk-frames": func(f *flooder, d time.Duration) {
		junk := []byte{0, 0, 0, 14, 0, 12, '{', '"', 'v', '"', ':', 'n', 'o', 'p', 'e', '!', '}', '}'}
		seg := make([]byte, kcp.IKCP_OVERHEAD+len(junk))
		seg[4] = kcp.IKCP_CMD_PUSH
		binary.LittleEndian.PutUint32(seg[20:], uint32(len(junk)))
		copy(seg[kcp.IKCP_OVERHEAD:], junk)
		end := time.Now().Add(d)
		for i := 0; i < 200_000 && time.Now().Before(end); i++ {
			binary.LittleEndian.PutUint32(seg, uint32(i%4+1))    // conv
			binary.LittleEndian.PutUint32(seg[12:], uint32(i/4)) // sn
			f.write(seg)
			if i%32 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	},
	// New conversations as fast as the machine allows (bounded), each claiming a frame that
	// never ends, so that they stay pending.
	"new-conversations": func(f *flooder, d time.Duration) {
		seg := make([]byte, kcp.IKCP_OVERHEAD+8)
		seg[4] = kcp.IKCP_CMD_PUSH
		binary.LittleEndian.PutUint32(seg[20:], 8)
		binary.BigEndian.PutUint32(seg[kcp.IKCP_OVERHEAD:], 8000)
		end := time.Now().Add(d)
		for conv := uint32(1); conv < 1_000_000 && time.Now().Before(end); conv++ {
			binary.LittleEndian.PutUint32(seg, conv)
			f.write(seg)
			if conv%32 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	},
	// New conversations that each send requests without a hello (answered, then closed).
	"requests-before-hello": func(f *flooder, d time.Duration) {
		get, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpGet, ID: 1, Key: []byte("k")}, nil)
		frames := bytes.Repeat(get, 6)
		end := time.Now().Add(d)
		for conv := uint32(1); conv < 1_000_000 && time.Now().Before(end); conv++ {
			k := kcp.NewKCP(conv, func(buf []byte, n int) { f.write(buf[:n]) })
			k.NoDelay(1, 10, 2, 1)
			k.Send(frames)
			k.Update()
			if conv%16 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	},
}

// BenchmarkJunkFlood measures what a flood from one address costs: the daemon's RSS (a separate
// process), a legitimate client's latency before and during it, and the bytes the flooding
// address got back per byte it sent (unestablished conversations: at most 3).
//
//	go test -run XXX -bench JunkFlood -benchtime 1x ./tests/
func BenchmarkJunkFlood(b *testing.B) {
	bin := buildDaemon(b)
	for _, name := range []string{"junk-frames", "new-conversations", "requests-before-hello"} {
		b.Run("flood="+name, func(b *testing.B) {
			d := startDaemon(b, bin, "-admin", "off")
			pid := d.cmd.Process.Pid
			c, err := client.Dial(d.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rssBefore := procStatusKB(pid, "VmRSS")
			base := legitLatencies(b, c, 2*time.Second)
			f := newFlooder(b, net.UDPAddrFromAddrPort(mustAddrPort(b, d.addr)))
			var wg sync.WaitGroup
			wg.Go(func() { floods[name](f, 3*time.Second) })
			during := legitLatencies(b, c, 3*time.Second)
			wg.Wait()
			f.stop()
			b.ReportMetric(float64(rssBefore)/1024, "rss-before-MB")
			b.ReportMetric(float64(procStatusKB(pid, "VmHWM"))/1024, "rss-peak-MB")
			b.ReportMetric(pct(base, 99), "p99-quiet-µs")
			b.ReportMetric(pct(during, 99), "p99-flood-µs")
			b.ReportMetric(float64(f.sent.Load())/1e6, "flood-sent-MB")
			b.ReportMetric(float64(f.received.Load())/float64(max(1, f.sent.Load())), "out/in")
		})
	}
}

// legitLatencies runs gets for d and returns their latencies.
func legitLatencies(b *testing.B, c *client.Client, d time.Duration) []time.Duration {
	ctx := pctest.Context(b)
	c.Set(ctx, "legit", []byte("v"))
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t0 := time.Now()
		if _, err := c.Get(ctx, "legit"); err != nil {
			b.Errorf("legitimate get: %v", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat
}

func pct(lat []time.Duration, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[len(s)*p/100].Microseconds())
}

func mustAddrPort(tb testing.TB, s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		tb.Fatal(err)
	}
	return ap
}

// BenchmarkFrozenSubscribers: subscribers (with values) that stop reading and acknowledging
// while one writer sets 400 values of 1 MiB; the daemon's memory stays within the push budgets.
// The run without subscribers is the baseline: the cache's own values (64 MiB budget) and
// bbolt's file pages mapped into the process (RssFile).
//
//	go test -run XXX -bench FrozenSubscribers -benchtime 1x ./tests/
func BenchmarkFrozenSubscribers(b *testing.B) {
	bin := buildDaemon(b)
	for _, subs := range []int{0, 8} {
		b.Run(fmt.Sprintf("frozen=%d", subs), func(b *testing.B) { benchFrozen(b, bin, subs) })
	}
}

func benchFrozen(b *testing.B, bin string, subs int) {
	d := startDaemon(b, bin, "-admin", "off", "-max-value", "1048576", "-memory-mb", "64")
	pid := d.cmd.Process.Pid
	for range subs {
		r := dialRawConn(b, d.addr)
		r.hello("")
		r.call(wire.Header{Op: task.OpSubscribe, ID: 2, Flags: task.FlagPrefix | task.FlagWithValue}, nil)
	}
	w, err := client.Dial(d.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ctx := pctest.Context(b)
	value := bytes.Repeat([]byte("v"), 1<<20)
	failed := 0
	start := time.Now()
	for i := range 400 {
		if _, err := w.Set(ctx, fmt.Sprint("big:", i%50), value); err != nil {
			failed++
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(procStatusKB(pid, "VmHWM"))/1024, "rss-peak-MB")
	b.ReportMetric(float64(procStatusKB(pid, "RssAnon"))/1024, "rss-anon-MB")
	b.ReportMetric(float64(procStatusKB(pid, "RssFile"))/1024, "rss-file-MB")
	b.ReportMetric(float64(failed), "writer-errors")
	b.ReportMetric(float64(elapsed.Milliseconds())/400, "ms/set")
}

// BenchmarkEncryption: the same get round trips with and without a pre-shared key, 16 callers on
// one client, in one run.
//
//	go test -run XXX -bench Encryption -count 3 ./tests/
func BenchmarkEncryption(b *testing.B) {
	for _, mode := range []string{"plain", "aes-256"} {
		b.Run("mode="+mode, func(b *testing.B) {
			cfg := pipecached.Config{}
			var opts []client.Option
			if mode != "plain" {
				cfg.CryptKey = testKey
				opts = append(opts, client.WithCryptKey(testKey))
			}
			d := testdaemon.Start(b, cfg)
			c, err := client.Dial(d.Addr().String(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := pctest.Context(b)
			c.Set(ctx, "k", bytes.Repeat([]byte("v"), 100))
			busy0 := d.Snapshot().Loops[0].Busy
			b.ReportAllocs()
			b.SetParallelism(8) // 16 callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(ctx, "k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((d.Snapshot().Loops[0].Busy-busy0).Nanoseconds())/float64(b.N), "incoming-busy-ns/op")
		})
	}
}
