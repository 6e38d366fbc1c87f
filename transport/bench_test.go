package transport

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// echoHandler answers every frame with the same reply frame.
type echoHandler struct {
	reply  []byte
	frames int
}

func (h *echoHandler) Frame(c *Conn, body []byte) {
	h.frames++
	c.Send(h.reply)
}
func (h *echoHandler) Closed(*Conn, error) {}

// benchPeer is a client conversation on a UDP socket of its own, driven by the benchmark.
type benchPeer struct {
	tb    testing.TB
	sock  *net.UDPConn
	to    netip.AddrPort
	k     *kcp.KCP
	block kcp.BlockCrypt
	seal  *dgram.Sealer
	sbuf  []byte
	rbuf  []byte
	in    wire.Splitter
}

func newBenchPeer(tb testing.TB, to netip.AddrPort, conv uint32, block kcp.BlockCrypt) *benchPeer {
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	tb.Cleanup(func() { sock.Close() })
	p := &benchPeer{tb: tb, sock: sock, to: to, block: block, seal: dgram.NewSealer(block),
		sbuf: make([]byte, dgram.MaxDatagram), rbuf: make([]byte, dgram.MaxDatagram)}
	p.k = kcp.NewKCP(conv, func(b []byte, n int) {
		if _, err := sock.WriteToUDPAddrPort(p.sbuf[:p.seal.Seal(p.sbuf, b[:n], nil)], to); err != nil {
			tb.Fatal(err)
		}
	})
	p.k.NoDelay(1, 10, 2, 1)
	p.k.WndSize(256, 256)
	p.k.SetMtu(1400 - dgram.Overhead(block))
	return p
}

// request sends a frame (with the ACK of the last reply).
func (p *benchPeer) request(frame []byte) {
	p.k.Send(frame)
	dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL)
}

// reply reads datagrams until a whole frame has arrived.
func (p *benchPeer) reply() {
	for {
		require.NoError(p.tb, p.sock.SetReadDeadline(time.Now().Add(time.Minute)))
		n, err := p.sock.Read(p.rbuf)
		require.NoError(p.tb, err)
		data, ok := dgram.Open(p.block, p.rbuf[:n])
		require.True(p.tb, ok)
		p.k.Input(data, kcp.IKCP_PACKET_REGULAR, false)
		for size := p.k.PeekSize(); size >= 0; size = p.k.PeekSize() {
			p.in.Commit(p.k.Recv(p.in.Buffer(size)))
		}
		if body, err := p.in.Next(); body != nil || err != nil {
			require.NoError(p.tb, err)
			return
		}
	}
}

// BenchmarkServerRoundTrip: the server's cost per request through its socket. A client KCP on
// a socket of its own sends a request (with the ACK of the last reply); the server reads it
// (recvmmsg), decrypts it, feeds its conversation, hands the frame to a handler that replies,
// flushes and sends the reply with the request's ACK (sendmmsg); the client reads the reply. One
// datagram each way per op, all on the benchmark goroutine: the figure is the server's
// datagram path plus the client's (a kcp.KCP and two system calls), the same before and after a
// change to the server.
//
//	go test -run '^$' -bench ServerRoundTrip ./transport/
func BenchmarkServerRoundTrip(b *testing.B) {
	cfb, err := kcp.NewAESBlockCrypt(make([]byte, 32))
	require.NoError(b, err)
	gcm, err := kcp.NewAESGCMCrypt(make([]byte, 32))
	require.NoError(b, err)
	for _, tc := range []struct {
		name  string
		block kcp.BlockCrypt
	}{{"plain", nil}, {"aes", gcm}, {"aes-cfb", cfb}} {

		b.Run(tc.name, func(b *testing.B) {
			h := &echoHandler{reply: frameOf(b, 1)}
			s, err := NewServer(Config{Addr: "127.0.0.1:0", Crypt: tc.block}, h)
			require.NoError(b, err)
			l := newTestLoop()
			require.NoError(b, s.Attach(l))
			b.Cleanup(func() { s.Close() })
			p := newBenchPeer(b, s.Addr(), 7, tc.block)
			req := frameOf(b, 0)
			roundTrip := func() {
				p.request(req)
				for want := h.frames + 1; h.frames < want; {
					s.receive()
				}
				l.ready.Run()
				p.reply()
			}
			roundTrip()
			s.byID[1].Establish()
			l.ready.Run()
			b.ReportAllocs()
			for b.Loop() {
				roundTrip()
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.DatagramsIn+st.DatagramsOut)/float64(b.N+1), "datagrams/op")
		})
	}
}
