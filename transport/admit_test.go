package transport

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// sourceN is the n-th test source address, each on its own IPv4 address.
func sourceN(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)}), 40000)
}

func openFrom(s *Server, from netip.AddrPort, conv uint32) {
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	for _, d := range clientSegments(conv, frame) {
		s.Inject(d, from)
	}
}

// TestPendingCapEvictsTheOldest: at MaxPending, a new conversation pushes out the oldest
// pending one, so a flood that never says hello cannot lock newcomers out.
func TestPendingCapEvictsTheOldest(t *testing.T) {
	s, l, rec := newTestServer(t, Config{MaxPending: 10, PendingRate: 1000})
	for i := range 100 {
		openFrom(s, sourceN(i), uint32(i))
	}
	l.iterate()
	st := s.Stats()
	assert.Equal(t, 10, st.Pending)
	assert.Equal(t, uint64(90), st.Evicted)
	for _, c := range s.byID {
		assert.GreaterOrEqual(t, c.key.conv, uint32(90), "the newest are kept")
	}
	assert.Len(t, rec.closed, 90)
	assert.ErrorIs(t, rec.closed[0], ErrEvicted)

	for _, c := range s.byID { // established conversations no longer count against the cap
		c.Establish()
	}
	assert.Zero(t, s.Stats().Pending)
	openFrom(s, sourceN(500), 500)
	assert.Equal(t, 1, s.Stats().Pending)
	assert.Equal(t, 11, s.Stats().Conns, "an established conversation is never evicted")
}

// TestOneSourceCannotTakeEveryonesShare: one address gets at most PendingPerSource pending
// conversations and SourceRate new ones per second; another address is admitted meanwhile.
func TestOneSourceCannotTakeEveryonesShare(t *testing.T) {
	s, l, _ := newTestServer(t, Config{MaxPending: 1000, PendingRate: 1000, PendingPerSource: 20, SourceRate: 1000})
	flood := sourceN(1)
	for conv := range uint32(500) {
		openFrom(s, flood, conv)
	}
	l.iterate()
	assert.Equal(t, 20, s.Stats().Pending, "one source's pending conversations over its cap")
	assert.Equal(t, uint64(480), s.Stats().Refused)
	openFrom(s, sourceN(2), 1)
	assert.Equal(t, 21, s.Stats().Pending, "another source is still admitted")

	// The per-source rate: with its pending cap lifted, one source's burst is cut at SourceRate.
	s2, l2, _ := newTestServer(t, Config{MaxPending: 10_000, PendingRate: 10_000, PendingPerSource: 10_000, SourceRate: 50})
	for conv := range uint32(500) {
		openFrom(s2, flood, conv)
	}
	l2.iterate()
	assert.LessOrEqual(t, s2.Stats().Pending, 51)
	openFrom(s2, sourceN(2), 1)
	assert.LessOrEqual(t, s2.Stats().Pending, 52)
	assert.Equal(t, uint64(1), s2.Stats().Opened-uint64(s2.Stats().Pending)+1, "the second source got in")

	// The global rate: many sources together are cut at PendingRate.
	s3, l3, _ := newTestServer(t, Config{MaxPending: 10_000, PendingRate: 50})
	for i := range 500 {
		openFrom(s3, sourceN(i), uint32(i))
	}
	l3.iterate()
	assert.LessOrEqual(t, s3.Stats().Pending, 51)
}

// TestOnlyASegmentOfSeqZeroStartsAConversation: segments from the middle of a conversation the
// server does not know (or junk that parses as KCP) create nothing.
func TestOnlyASegmentOfSeqZeroStartsAConversation(t *testing.T) {
	s, _, _ := newTestServer(t, Config{})
	from := sourceN(1)
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, make([]byte, 3000))
	segs := clientSegments(7, frame) // three datagrams: sn 0, 1, 2
	require.Len(t, segs, 3)
	s.Inject(segs[2], from)
	s.Inject(segs[1], from)
	ack := make([]byte, kcp.IKCP_OVERHEAD)
	ack[4] = kcp.IKCP_CMD_ACK
	s.Inject(ack, from)
	assert.Zero(t, s.Stats().Conns)
	assert.Equal(t, uint64(3), s.Stats().NotStart)
	s.Inject(segs[0], from)
	assert.Equal(t, 1, s.Stats().Conns)
}

// TestPendingConversationHoldsLittle: a pending conversation's receive window is small, out of
// order segments beyond it are not kept, and a frame longer than PendingFrame closes it.
func TestPendingConversationHoldsLittle(t *testing.T) {
	s, _, rec := newTestServer(t, Config{})
	from := sourceN(1)
	// A stream that claims a 4 MiB frame: refused at once while pending.
	claim := binary.BigEndian.AppendUint32(nil, wire.MaxFrame)
	for _, d := range clientSegments(1, append(claim, make([]byte, 100)...)) {
		s.Inject(d, from)
	}
	require.Len(t, rec.closed, 1)
	assert.ErrorIs(t, rec.closed[0], ErrBadStream)

	// Out-of-order segments beyond the pending window are dropped by KCP, not parked: sn 0
	// opens the conversation, then sn 2..99 arrive with sn 1 missing.
	first := binary.BigEndian.AppendUint32(nil, PendingFrame-100) // a frame that never ends
	s.Inject(pushSegment(2, 0, append(first, make([]byte, 1296)...)), from)
	for sn := uint32(2); sn < 100; sn++ {
		s.Inject(pushSegment(2, sn, make([]byte, 1300)), from)
	}
	var c *Conn
	for _, x := range s.byID {
		c = x
	}
	require.NotNil(t, c)
	assert.LessOrEqual(t, c.kcp.PeekSize(), 0)
	assert.LessOrEqual(t, c.in.Buffered(), PendingFrame, "bytes buffered by a pending conversation")
	// What KCP parked: everything it will hand over once sn 1 comes.
	s.Inject(pushSegment(2, 1, make([]byte, 1300)), from)
	assert.LessOrEqual(t, c.in.Buffered(), pendingWindow*1300, "segments kept beyond the pending window")
}

// pushSegment is one KCP push segment of conversation conv.
func pushSegment(conv, sn uint32, data []byte) []byte {
	b := make([]byte, kcp.IKCP_OVERHEAD, kcp.IKCP_OVERHEAD+len(data))
	binary.LittleEndian.PutUint32(b, conv)
	b[4] = kcp.IKCP_CMD_PUSH
	binary.LittleEndian.PutUint16(b[6:], 256)
	binary.LittleEndian.PutUint32(b[12:], sn)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(data)))
	return append(b, data...)
}

// TestPendingTTLIsAbsolute: a pending conversation that keeps sending without saying hello is
// still dropped PendingTTL after it began.
func TestPendingTTLIsAbsolute(t *testing.T) {
	s, l, rec := newTestServer(t, Config{PendingTTL: 50 * time.Millisecond})
	from := sourceN(1)
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	segs := clientSegments(4, append(frame, frame...))
	s.Inject(segs[0], from)
	deadline := time.Now().Add(time.Minute)
	for i := 0; s.Stats().Conns > 0 && time.Now().Before(deadline); i++ {
		s.Inject(segs[0], from) // a resend: the conversation is never silent
		time.Sleep(time.Millisecond)
		l.iterate()
		if i > 10_000 {
			break
		}
	}
	assert.Zero(t, s.Stats().Conns, "a chatty pending conversation outlived its TTL")
	require.NotEmpty(t, rec.closed)
	assert.ErrorIs(t, rec.closed[0], ErrIdle)
}

func TestSourcesAreOnePerIPv6Slash64(t *testing.T) {
	s, _, _ := newTestServer(t, Config{PendingPerSource: 4})
	for i := range 10 {
		a := netip.MustParseAddrPort(fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1))
		openFrom(s, a, uint32(i))
	}
	assert.Equal(t, 4, s.Stats().Pending, "addresses of one /64 share a source")
	openFrom(s, netip.MustParseAddrPort("[2001:db8:1:3::1]:4000"), 99)
	assert.Equal(t, 5, s.Stats().Pending)
}

// TestUnknownConversationIsReset: data for a conversation the server does not know is answered
// with one segment at the client's una, carrying a goodbye with code 8, never larger than what
// came; an ACK alone gets nothing.
func TestUnknownConversationIsReset(t *testing.T) {
	s, l, _ := newTestServer(t, Config{})
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	hb, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpHeartbeat, ID: 99}, nil)
	seg := pushSegment(42, 17, hb)             // sn 17 of a conversation the server never saw
	binary.LittleEndian.PutUint32(seg[16:], 5) // the client expects our sn 5 next
	s.Inject(seg, from)
	ack := make([]byte, kcp.IKCP_OVERHEAD)
	binary.LittleEndian.PutUint32(ack, 42)
	ack[4] = kcp.IKCP_CMD_ACK
	s.Inject(ack, from)
	l.ready.Run()
	assert.Zero(t, s.Stats().Conns)
	assert.Equal(t, uint64(1), s.Stats().Resets)

	peer.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 2048)
	n, err := peer.Read(buf)
	require.NoError(t, err)
	assert.LessOrEqual(t, n, len(seg), "a reset is never larger than what caused it")
	assert.Equal(t, uint32(42), binary.LittleEndian.Uint32(buf))
	assert.Equal(t, byte(kcp.IKCP_CMD_PUSH), buf[4])
	assert.Equal(t, uint32(5), binary.LittleEndian.Uint32(buf[12:]), "at the sequence number the client expects")
	var h wire.Header
	var sp wire.Splitter
	sp.Write(buf[kcp.IKCP_OVERHEAD:n])
	body, err := sp.Next()
	require.NoError(t, err)
	_, err = wire.Decode(body, &h)
	require.NoError(t, err)
	assert.Equal(t, task.OpGoodbye, h.Op)
	assert.Equal(t, task.CodeUnauthorized, h.Code)
	assert.Zero(t, h.ID)
}

// TestEmptySegmentHoldsNothingBack: a push segment with no data is taken off KCP's queue like
// any other, so the frames behind it are delivered.
func TestEmptySegmentHoldsNothingBack(t *testing.T) {
	s, _, rec := newTestServer(t, Config{})
	from := sourceN(1)
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("after"))
	s.Inject(pushSegment(3, 0, nil), from)
	s.Inject(pushSegment(3, 1, frame), from)
	require.Len(t, rec.frames, 1, "the frame behind an empty segment")
}

// TestACKWaitsForTheReply: the ACK of a request rides with its reply, whether the reply is sent
// in the same iteration or a later one; with no reply it leaves alone after AckDelay.
func TestACKWaitsForTheReply(t *testing.T) {
	s, l, rec := newTestServer(t, Config{AckDelay: 50 * time.Millisecond})
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("ping"))
	client := kcp.NewKCP(9, func(b []byte, n int) { s.Inject(append([]byte(nil), b[:n]...), from) })
	client.NoDelay(1, 10, 2, 1)
	send := func() {
		client.Send(frame)
		dgram.Flush(client, kcp.IKCP_FLUSH_FULL)
	}
	send()
	require.Len(t, rec.frames, 1)
	c := s.byID[1]
	c.Establish()
	l.ready.Run()
	out := s.Stats().DatagramsOut
	assert.Zero(t, out-0, "the ACK waits: nothing sent yet")
	require.NoError(t, c.Send(frame)) // the reply, in a later iteration
	l.ready.Run()
	assert.Equal(t, uint64(1), s.Stats().DatagramsOut, "ACK and reply in one datagram")

	send() // a second request, never answered
	l.ready.Run()
	assert.Equal(t, uint64(1), s.Stats().DatagramsOut, "its ACK waits")
	deadline := time.Now().Add(time.Minute)
	for s.Stats().DatagramsOut < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		l.iterate()
	}
	assert.Equal(t, uint64(2), s.Stats().DatagramsOut, "after AckDelay the ACK leaves alone")
}

// TestVouchedConversationsHaveALaneOfTheirOwn (#23 item 13): one address flooding anonymous
// conversations spends its share of admission and fills MaxPending, yet a conversation from the
// same address whose hello Config.Vouch vouches for is admitted, and no anonymous conversation
// evicts it. (The test loop's clock moves only in iterate: the rates are deterministic here.)
func TestVouchedConversationsHaveALaneOfTheirOwn(t *testing.T) {
	vouch := func(frame []byte) bool {
		var h wire.Header
		v, err := wire.Decode(frame, &h)
		return err == nil && string(v) == "token"
	}
	s, l, _ := newTestServer(t, Config{MaxPending: 8, PendingRate: 1000, PendingPerSource: 100, SourceRate: 8,
		PendingTTL: time.Hour, Vouch: vouch})
	key := func(conv uint32) convKey { return convKey{addr: sourceN(1), conv: conv} }
	open := func(conv uint32, value string) {
		frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte(value))
		for _, d := range clientSegments(conv, frame) {
			s.Inject(d, sourceN(1))
		}
	}
	for conv := range uint32(100) { // the flood: MaxPending reached, the source's rate spent
		open(conv, "anon")
	}
	require.Equal(t, 8, s.Stats().Pending)
	require.Equal(t, uint64(92), s.Stats().Refused)

	open(3000, "not a token") // a wrong token is a stranger: refused, the rate is spent
	assert.Nil(t, s.conns[key(3000)])
	open(1000, "token") // the neighbour behind the same address says who it is
	c := s.conns[key(1000)]
	require.NotNil(t, c, "the vouched conversation was refused")
	assert.Equal(t, vouched, c.lane)
	assert.Equal(t, uint64(1), s.Stats().Evicted, "it takes the oldest stranger's place")
	assert.Nil(t, s.conns[key(0)])

	for conv := range uint32(100) { // the flood goes on, its budget refilling as time passes
		open(2000+conv, "anon")
		l.iterate()
	}
	assert.Same(t, c, s.conns[key(1000)], "a stranger evicted a vouched conversation")
	assert.Equal(t, 8, s.Stats().Pending)
}

// TestRatesBurstOneSecondsWorth (#23 item 6): PROTOCOL.md states each rate's burst: one
// second's worth, the bucket full at first. With the clock still (the test loop's moves only in
// iterate), exactly that many resets, and new conversations from one source and from all, get
// through.
func TestRatesBurstOneSecondsWorth(t *testing.T) {
	s, _, _ := newTestServer(t, Config{})
	hb, _ := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpPing, ID: 12345678}, nil)
	for conv := range uint32(3 * resetRate) {
		s.Inject(pushSegment(conv, 5, hb), sourceN(int(conv%200)))
	}
	assert.Equal(t, uint64(resetRate), s.Stats().Resets, "resets at once")

	s, _, _ = newTestServer(t, Config{MaxPending: 10_000, PendingRate: 10_000, PendingPerSource: 10_000, SourceRate: 50})
	for conv := range uint32(500) {
		openFrom(s, sourceN(1), conv)
	}
	assert.Equal(t, 50, s.Stats().Pending, "conversations from one source at once")

	s, _, _ = newTestServer(t, Config{MaxPending: 10_000, PendingRate: 300, PendingPerSource: 10_000, SourceRate: 10_000})
	for i := range 1000 {
		openFrom(s, sourceN(i), uint32(i))
	}
	assert.Equal(t, 300, s.Stats().Pending, "conversations from all sources at once")
}
