package transport

import (
	"bytes"
	"encoding/binary"

	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// testLoop drives a Server from the test goroutine: the real clock, wheel and ready list, no
// epoll (the tests call input directly).
type testLoop struct {
	clock *timer.Clock
	wheel *timer.Wheel
	ready timer.Ready
}

func newTestLoop() *testLoop {
	c := timer.NewClock()
	return &testLoop{clock: c, wheel: timer.NewWheel(time.Millisecond, c.Nanos())}
}

func (l *testLoop) AddFD(int, uint32, func(uint32)) error { return nil }
func (l *testLoop) ModFD(int, uint32) error               { return nil }
func (l *testLoop) RemoveFD(int) error                    { return nil }
func (l *testLoop) Clock() *timer.Clock                   { return l.clock }
func (l *testLoop) Wheel() *timer.Wheel                   { return l.wheel }
func (l *testLoop) Ready() *timer.Ready                   { return &l.ready }

// iterate runs what the loop would run after the fds: timers, then the ReadyTimer.
func (l *testLoop) iterate() {
	l.wheel.Advance(l.clock.Refresh())
	l.ready.Run()
}

type recorder struct {
	frames [][]byte
	closed []error
}

func (r *recorder) Frame(c *Conn, body []byte) {
	r.frames = append(r.frames, append([]byte(nil), body...))
}
func (r *recorder) Closed(c *Conn, reason error) { r.closed = append(r.closed, reason) }

func newTestServer(tb testing.TB, cfg Config) (*Server, *testLoop, *recorder) {
	cfg.Addr = "127.0.0.1:0"
	rec := &recorder{}
	s, err := NewServer(cfg, rec)
	require.NoError(tb, err)
	l := newTestLoop()
	require.NoError(tb, s.Attach(l))
	tb.Cleanup(func() { s.Close() })
	return s, l, rec
}

// clientSegments returns the datagrams a KCP client with conv would send for frame.
func clientSegments(conv uint32, frame []byte) [][]byte {
	var dgrams [][]byte
	k := kcp.NewKCP(conv, func(b []byte, n int) { dgrams = append(dgrams, append([]byte(nil), b[:n]...)) })
	k.NoDelay(1, 10, 2, 1)
	k.Send(frame)
	dgram.Flush(k, kcp.IKCP_FLUSH_FULL)
	return dgrams
}

// openEstablished opens conversation conv from the address with an empty frame, as a hello
// would, and establishes it as the stage above does after a successful hello. Its peer counts
// as validated, as once it has acknowledged the hello's reply (validate_test.go tests that).
func openEstablished(t *testing.T, s *Server, from netip.AddrPort, conv uint32) *Conn {
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	for _, d := range clientSegments(conv, frame) {
		s.Inject(d, from)
	}
	c := s.byID[1]
	require.NotNil(t, c)
	c.Establish()
	c.validated = true
	return c
}

func TestServerKeysConversationsByAddressAndConv(t *testing.T) {
	s, l, rec := newTestServer(t, Config{})
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("x"))
	a := netip.MustParseAddrPort("127.0.0.1:40000")
	b := netip.MustParseAddrPort("127.0.0.2:40000")
	for _, from := range []netip.AddrPort{a, b} {
		for conv := uint32(1); conv <= 3; conv++ {
			for _, d := range clientSegments(conv, frame) {
				s.Inject(d, from)
			}
		}
	}
	l.iterate()
	assert.Len(t, rec.frames, 6)
	assert.Equal(t, 6, s.Stats().Conns)
}

func TestServerExpiresSilentPendingConversations(t *testing.T) {
	s, l, rec := newTestServer(t, Config{PendingTTL: 10 * time.Millisecond})
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	for _, d := range clientSegments(7, frame) {
		s.Inject(d, from)
	}
	// Counted before the loop iterates: its clock and wheel move only in iterate, and a slow
	// machine may take the 10 ms before the first one.
	require.Equal(t, 1, s.Stats().Conns)
	deadline := time.Now().Add(time.Minute)
	for s.Stats().Conns > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the wheel runs on the real clock; this only waits for it
		l.iterate()
	}
	assert.Zero(t, s.Stats().Conns)
	require.Len(t, rec.closed, 1)
	assert.ErrorIs(t, rec.closed[0], ErrIdle)
}

// TestSessionConversationsOutliveTheIdleTimeout: a conversation a session uses is not dropped
// for silence, however long (a heartbeat may be a minute apart, and the lease three of them;
// the session's lease decides); once no session uses it, IdleTimeout applies again.
func TestSessionConversationsOutliveTheIdleTimeout(t *testing.T) {
	s, l, rec := newTestServer(t, Config{IdleTimeout: 5 * time.Millisecond, PendingTTL: 5 * time.Millisecond})
	c := openEstablished(t, s, netip.MustParseAddrPort("127.0.0.1:40000"), 7)
	l.iterate()
	for range 40 { // 40 idle timeouts at least
		time.Sleep(5 * time.Millisecond)
		l.iterate()
	}
	require.Equal(t, 1, s.Stats().Conns, "a session's conversation was dropped for silence")
	require.Empty(t, rec.closed)

	c.SetLive(false) // its session said goodbye
	deadline := time.Now().Add(time.Minute)
	for s.Stats().Conns > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		l.iterate()
	}
	assert.Zero(t, s.Stats().Conns)
	require.Len(t, rec.closed, 1)
	assert.ErrorIs(t, rec.closed[0], ErrIdle)
}

func TestServerSendsRepliesInTheSameIteration(t *testing.T) {
	s, l, rec := newTestServer(t, Config{})
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("ping"))
	for _, d := range clientSegments(9, frame) {
		s.Inject(d, from)
	}
	require.Len(t, rec.frames, 1)
	c := s.byID[1]
	require.NoError(t, c.Send(frame))
	l.ready.Run() // end of the iteration: ACK and reply leave together, in one datagram
	assert.Equal(t, uint64(1), s.Stats().DatagramsOut)
	peer.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 2048)
	n, err := peer.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, 2*kcp.IKCP_OVERHEAD+len(frame), n, "one datagram: the ACK and the reply segment")
}

// FuzzDatagram throws arbitrary datagrams at the server's input path: it must never panic,
// never hold more pending conversations than the cap, and never buffer more than arrived.
func FuzzDatagram(f *testing.F) {
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("v"))
	for _, d := range clientSegments(1, frame) {
		f.Add(d)
	}
	f.Add(make([]byte, 24))
	hostile := clientSegments(2, []byte{0xff, 0xff, 0xff, 0xff})[0]
	f.Add(hostile)
	trunc := append([]byte(nil), clientSegments(3, frame)[0]...)
	binary.LittleEndian.PutUint32(trunc[20:], 5000) // claims more data than it carries
	f.Add(trunc)

	s, l, _ := newTestServer(f, Config{MaxPending: 64})
	from := netip.MustParseAddrPort("127.0.0.1:9") // discard port: replies go nowhere
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every input meets a fresh server: no conversation, full rate budgets. (Without this,
		// the pending cap and rate limits fill within seconds and every later input is refused
		// before reaching KCP: the fuzzer stops finding anything new.)
		// The clock stands still (no l.iterate): time-driven paths (timers, the sweep of
		// sources) would make coverage vary from run to run, and the fuzzer would spend its
		// time minimizing inputs whose coverage it cannot reproduce.
		s.CloseAll()
		l.ready.Run()
		s.adm.attach(l)
		clear(s.adm.sources)
		out := s.Stats().BytesOut
		in := s.Stats().BytesIn
		for len(data) > 0 {
			n := min(len(data), 1400)
			s.Inject(data[:n], from)
			data = data[n:]
		}
		l.ready.Run()
		st := s.Stats()
		if st.Pending > 64 {
			t.Fatalf("%d pending conversations over the cap of 64", st.Pending)
		}
		if sent, got := st.BytesOut-out, st.BytesIn-in; sent > Amplification*got {
			t.Fatalf("sent %d bytes to pending conversations that sent %d", sent, got)
		}
		for _, c := range s.byID {
			if c.in.Buffered() > PendingFrame {
				t.Fatalf("a pending conversation buffers %d bytes", c.in.Buffered())
			}
		}
	})
}

// TestServerBacksOffRetransmitsOnlyWithoutASession: a peer that stopped ACKing costs a
// retransmission check at most every maxTick, not every RTO/4, unless a session uses the
// conversation: then a silent peer (a client waiting for a lost reply) gets resends at KCP's
// pace. Hearing from the peer restores the fast period.
func TestServerBacksOffRetransmitsOnlyWithoutASession(t *testing.T) {
	for _, live := range []bool{false, true} {
		s, l, _ := newTestServer(t, Config{})
		from := netip.MustParseAddrPort("127.0.0.1:9")
		frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
		c := openEstablished(t, s, from, 5)
		c.SetLive(live)
		require.NoError(t, c.Send(frame)) // never acknowledged: the peer is silent
		l.ready.Run()
		require.True(t, c.retransmit.Scheduled())
		fast := c.aliveTick()
		assert.Equal(t, fast, c.tick)

		c.lastSeen -= int64(time.Hour)
		for range 20 {
			c.onRetransmit()
		}
		if live {
			assert.Equal(t, c.aliveTick(), c.tick, "a conversation with a session must not back off")
		} else {
			assert.Equal(t, maxTick, c.tick, "ticks to a silent peer without a session back off to maxTick")
		}
		assert.True(t, c.retransmit.Scheduled(), "unacknowledged data is still retransmitted")
		for _, d := range clientSegments(5, frame) { // the peer speaks again
			s.Inject(d, from)
		}
		assert.Equal(t, c.aliveTick(), c.tick)
	}
}

// TestRetransmitChecksFollowTheRTO: a live conversation's retransmission check runs every
// RTO/4, within [Interval, maxTick], rather than every Interval: a server slowed by load sees
// RTTs, and so RTOs, grow, and must then spend less of its time on checks, not more (a 10 ms
// tick for every conversation with data in flight fed a collapse at 100,000 sessions).
func TestRetransmitChecksFollowTheRTO(t *testing.T) {
	s, l, _ := newTestServer(t, Config{})
	c := openEstablished(t, s, netip.MustParseAddrPort("127.0.0.1:9"), 5)
	c.SetLive(true)
	l.ready.Run() // the ACK leaves: the conversation is idle
	rto := time.Duration(dgram.RTO(c.engine())) * time.Millisecond
	require.NotZero(t, rto, "dgram reads the RTO")
	assert.Equal(t, min(max(rto/4, s.cfg.Interval), maxTick), c.aliveTick())
	assert.Greater(t, c.aliveTick(), s.cfg.Interval, "KCP's first RTO (200 ms) needs no 10 ms checks")
	for _, tc := range []struct{ rto, tick time.Duration }{
		{20 * time.Millisecond, s.cfg.Interval},
		{400 * time.Millisecond, 100 * time.Millisecond},
		{60 * time.Second, maxTick},
	} {
		st, ok := dgram.Save(c.engine())
		require.True(t, ok)
		st.RTO = uint32(tc.rto / time.Millisecond)
		dgram.Restore(c.kcp, c.key.conv, c.output, st)
		assert.Equal(t, tc.tick, c.aliveTick(), "RTO %v", tc.rto)
	}
}

// TestSecondServerOnAPortIsRefused: a second server cannot bind an address in use (it would
// take new clients away from the first), unless both ask to share it with SO_REUSEPORT.
func TestSecondServerOnAPortIsRefused(t *testing.T) {
	first, err := NewServer(Config{Addr: "127.0.0.1:0"}, &recorder{})
	require.NoError(t, err)
	defer first.Close()
	_, err = NewServer(Config{Addr: first.Addr().String()}, &recorder{})
	assert.ErrorIs(t, err, unix.EADDRINUSE)

	a, err := NewServer(Config{Addr: "127.0.0.1:0", ReusePort: true}, &recorder{})
	require.NoError(t, err)
	defer a.Close()
	b, err := NewServer(Config{Addr: a.Addr().String(), ReusePort: true}, &recorder{})
	require.NoError(t, err, "shards that ask for SO_REUSEPORT share the port")
	b.Close()
}

// TestTamperedDatagramIsDroppedAndCounted: with AES-GCM, a datagram with one bit flipped
// (anywhere: nonce, data, tag) is dropped and counted as unauthenticated, opening nothing;
// the same datagram untouched opens a conversation.
func TestTamperedDatagramIsDroppedAndCounted(t *testing.T) {
	gcm, err := kcp.NewAESGCMCrypt(bytes.Repeat([]byte{3}, 32))
	require.NoError(t, err)
	s, _, rec := newTestServer(t, Config{Crypt: gcm})
	from := sourceN(1)
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("hello"))
	seg := clientSegments(4, frame)[0]
	sealed := make([]byte, len(seg)+dgram.Overhead(gcm))
	sealed = sealed[:dgram.NewSealer(gcm).Seal(sealed, seg, nil)]
	for _, bit := range []int{0, 8*12 + 3, 8*len(sealed) - 1} { // the nonce, the data, the tag
		tampered := bytes.Clone(sealed)
		tampered[bit/8] ^= 1 << (bit % 8)
		s.Inject(tampered, from)
	}
	assert.Equal(t, uint64(3), s.Stats().Unauthenticated)
	assert.Zero(t, s.Stats().Opened, "a tampered datagram opens nothing")
	s.Inject(sealed, from)
	assert.Equal(t, 1, s.Stats().Conns)
	assert.Len(t, rec.frames, 1)
}
