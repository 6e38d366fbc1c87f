package transport

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// kcpPeer is a client conversation in the test's hands: its KCP's output goes straight into
// the server's input, and the server's datagrams arrive on a real socket.
type kcpPeer struct {
	t    testing.TB
	s    *Server
	l    *testLoop
	sock *net.UDPConn
	from netip.AddrPort
	k    *kcp.KCP
	hold [][]byte // output not delivered yet (to reorder)
	keep bool     // hold output instead of delivering it
	in   wire.Splitter
	out  func([]byte) // if set, delivers output instead of the server's Inject
}

func newKCPPeer(t testing.TB, s *Server, l *testLoop, conv uint32) *kcpPeer {
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { sock.Close() })
	p := &kcpPeer{t: t, s: s, l: l, sock: sock, from: sock.LocalAddr().(*net.UDPAddr).AddrPort()}
	p.k = kcp.NewKCP(conv, func(b []byte, n int) {
		d := append([]byte(nil), b[:n]...)
		switch {
		case p.keep:
			p.hold = append(p.hold, d)
		case p.out != nil:
			p.out(d)
		default:
			s.Inject(d, p.from)
		}
	})
	p.k.NoDelay(1, 10, 2, 1)
	p.k.WndSize(256, 256)
	return p
}

// send sends a frame and lets the server's iteration end.
func (p *kcpPeer) send(frame []byte) {
	p.k.Send(frame)
	dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL)
	p.l.ready.Run()
}

// receive reads the server's datagrams until want frames arrived, ACKing them, and returns them.
func (p *kcpPeer) receive(want int) [][]byte {
	var frames [][]byte
	buf := make([]byte, 2048)
	for len(frames) < want {
		require.NoError(p.t, p.sock.SetReadDeadline(time.Now().Add(time.Minute)))
		n, err := p.sock.Read(buf)
		require.NoError(p.t, err)
		p.k.Input(buf[:n], kcp.IKCP_PACKET_REGULAR, false)
		for {
			size := p.k.PeekSize()
			if size < 0 {
				break
			}
			m := p.k.Recv(p.in.Buffer(size))
			p.in.Commit(m)
		}
		for {
			body, err := p.in.Next()
			require.NoError(p.t, err)
			if body == nil {
				break
			}
			frames = append(frames, append([]byte(nil), body...))
		}
	}
	dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL) // the ACKs
	p.l.ready.Run()
	return frames
}

func frameOf(tb testing.TB, i int) []byte {
	f, err := wire.AppendFrame(nil, &wire.Header{V: 1, ID: uint64(i + 1)}, []byte(fmt.Sprint("value ", i)))
	require.NoError(tb, err)
	return f
}

// TestIdleConversationIsCompactAndGoesOn: an established conversation with nothing in flight
// gives its KCP and buffers back, and goes on exactly where it was, both ways, as often as it
// falls idle: requests arrive in order, replies and pushes (sent while compact) arrive in order.
func TestIdleConversationIsCompactAndGoesOn(t *testing.T) {
	for _, ackDelay := range []time.Duration{-1, 5 * time.Millisecond} {
		t.Run(fmt.Sprint("ack-delay ", ackDelay), func(t *testing.T) {
			s, l, rec := newTestServer(t, Config{AckDelay: ackDelay})
			p := newKCPPeer(t, s, l, 42)
			p.send(frameOf(t, 0))
			c := s.byID[1]
			require.NotNil(t, c)
			c.Establish()
			require.NoError(t, c.Send(frameOf(t, 0)))
			l.ready.Run()
			p.receive(1)
			waitCompact(t, l, c)
			assert.Equal(t, 1, s.Stats().Idle)

			for i := 1; i <= 50; i++ {
				p.send(frameOf(t, i)) // a request to a compact conversation
				require.Len(t, rec.frames, i+1)
				assert.Equal(t, frameOf(t, i)[4:], rec.frames[i], "request %d", i)
				waitCompact(t, l, c)
				require.NoError(t, c.Send(frameOf(t, 1000+i))) // a push to a compact one
				l.ready.Run()
				assert.Equal(t, [][]byte{frameOf(t, 1000+i)[4:]}, p.receive(1), "push %d", i)
				waitCompact(t, l, c)
			}
			assert.GreaterOrEqual(t, s.Stats().Compactions, uint64(100))
			c.Close(nil)
			assert.Zero(t, s.Stats().Idle, "a closed conversation is not counted idle")
		})
	}
}

// waitCompact runs the server's timers until c is compact (held ACKs leave after AckDelay).
func waitCompact(t *testing.T, l *testLoop, c *Conn) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); c.kcp != nil; {
		require.True(t, time.Now().Before(deadline), "the conversation never fell idle")
		time.Sleep(time.Millisecond)
		l.iterate()
	}
}

// TestConversationWithSomethingPendingIsNotCompact: out-of-order segments, a partial frame,
// unacknowledged output: none is dropped by compaction, and the conversation compacts once they
// are done.
func TestConversationWithSomethingPendingIsNotCompact(t *testing.T) {
	s, l, rec := newTestServer(t, Config{AckDelay: -1})
	p := newKCPPeer(t, s, l, 43)
	p.send(frameOf(t, 0))
	c := s.byID[1]
	c.Establish()
	l.ready.Run()
	waitCompact(t, l, c)

	// Out of order: the second segment of a two-segment frame arrives first.
	big, err := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 9}, make([]byte, 2000))
	require.NoError(t, err)
	p.keep = true
	p.k.Send(big)
	dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL)
	p.keep = false
	require.Len(t, p.hold, 2)
	s.Inject(p.hold[1], p.from)
	l.ready.Run()
	assert.NotNil(t, c.kcp, "a segment waits for the one before it")
	s.Inject(p.hold[0], p.from)
	l.ready.Run()
	require.Len(t, rec.frames, 2)
	assert.Equal(t, big[4:], rec.frames[1])
	waitCompact(t, l, c)

	// A partial frame: its first segment only.
	p.keep, p.hold = true, nil
	p.k.Send(big)
	dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL)
	p.keep = false
	s.Inject(p.hold[0], p.from)
	l.ready.Run()
	assert.NotNil(t, c.kcp, "half a frame is buffered")
	s.Inject(p.hold[1], p.from)
	l.ready.Run()
	require.Len(t, rec.frames, 3)
	waitCompact(t, l, c)

	// Unacknowledged output.
	require.NoError(t, c.Send(frameOf(t, 7)))
	l.ready.Run()
	assert.NotNil(t, c.kcp, "a reply is in flight")
	assert.Equal(t, [][]byte{frameOf(t, 7)[4:]}, p.receive(1))
	waitCompact(t, l, c)
}

// TestCompactionKillSwitch: with NoCompaction every conversation keeps its KCP.
func TestCompactionKillSwitch(t *testing.T) {
	s, l, _ := newTestServer(t, Config{AckDelay: -1, NoCompaction: true})
	p := newKCPPeer(t, s, l, 44)
	p.send(frameOf(t, 0))
	c := s.byID[1]
	c.Establish()
	l.ready.Run()
	l.iterate()
	assert.NotNil(t, c.kcp)
	assert.Zero(t, s.Stats().Compactions)
}

// BenchmarkIdleConversationMemory reports the transport's heap per idle established
// conversation (Conn, its maps' entries, its state), with and without compaction. The spare
// engines (at most maxSpares, about 21 KB each) are a fixed cost and not counted.
func BenchmarkIdleConversationMemory(b *testing.B) {
	for _, off := range []bool{false, true} {
		b.Run(fmt.Sprint("no-compaction=", off), func(b *testing.B) {
			const n = 10_000
			for b.Loop() {
				s, l, _ := newTestServer(b, Config{AckDelay: -1, NoCompaction: off, MaxConns: 2 * n,
					PendingRate: 1 << 30, SourceRate: 1 << 30, PendingPerSource: 1 << 30})
				frame := frameOf(b, 0)
				var segs [][]byte
				for conv := uint32(1); conv <= n; conv++ {
					segs = append(segs, clientSegments(conv, frame)[0])
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i, d := range segs {
					s.Inject(d, sourceN(i%200+1))
					s.byID[uint64(i+1)].Establish()
					l.ready.Run()
				}
				segs = nil
				s.spares = nil // a fixed cost (at most maxSpares engines), not a per-conversation one
				runtime.GC()
				runtime.ReadMemStats(&after)
				if !off && s.Stats().Idle != n {
					b.Fatalf("%d of %d conversations compact", s.Stats().Idle, n)
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/conn")
				s.Close()
			}
		})
	}
}
