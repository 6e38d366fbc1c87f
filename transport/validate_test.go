package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// helloFrame is a frame of about size bytes, as a padded hello is.
func helloFrame(tb testing.TB, size int) []byte {
	f, err := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte(strings.Repeat("p", size-6-len(`{"v":1}`))))
	require.NoError(tb, err)
	return f
}

// counted wraps a peer's output so that every byte it sends the server is counted, sealed with
// block if not nil.
func (p *kcpPeer) counted(block kcp.BlockCrypt, sent *int) {
	seal := dgram.NewSealer(block)
	p.out = func(b []byte) {
		d := make([]byte, len(b)+dgram.Overhead(block))
		d = d[:seal.Seal(d, b, nil)]
		*sent += len(d)
		p.s.Inject(d, p.from)
	}
}

// drain reads every datagram the server has sent the peer, and returns their bytes.
func (p *kcpPeer) drain() int {
	got := 0
	buf := make([]byte, 2048)
	for {
		require.NoError(p.t, p.sock.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		n, err := p.sock.Read(buf)
		if err != nil {
			return got
		}
		got += n
	}
}

// runUntilClosed drives the server's loop until the conversation has ended (a minute at most)
// and returns why (nil if it never did).
func runUntilClosed(l *testLoop, rec *recorder) error {
	deadline := time.Now().Add(time.Minute)
	for len(rec.closed) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		l.iterate()
	}
	if len(rec.closed) == 0 {
		return nil
	}
	return rec.closed[0]
}

// TestUnvalidatedPeerGetsAtMostThreeTimesItsBytes: a peer that sends one padded hello and
// never acknowledges anything (a forged source address) gets at most three times its bytes
// over the conversation's whole life, though a session accepted it (established and live, as
// after a successful hello with a long heartbeat) and the server has far more to send it: the
// reply's resends included. Its conversation ends PendingTTL after it began. With and without
// encryption (the limit counts what is on the wire).
func TestUnvalidatedPeerGetsAtMostThreeTimesItsBytes(t *testing.T) {
	gcm, err := kcp.NewAESGCMCrypt(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	cfb, err := kcp.NewAESBlockCrypt(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		block kcp.BlockCrypt
		reply int
	}{{"plain, a hello's reply", nil, 216}, {"plain, a big reply", nil, 4000}, {"AES-GCM", gcm, 216}, {"legacy AES-CFB", cfb, 216}} {

		t.Run(tc.name, func(t *testing.T) {
			s, l, rec := newTestServer(t, Config{PendingTTL: time.Second, Crypt: tc.block})
			p := newKCPPeer(t, s, l, 11)
			sent := 0
			p.counted(tc.block, &sent)
			p.send(helloFrame(t, 250))
			c := s.byID[1]
			require.NotNil(t, c)
			c.Establish() // a session accepted the hello
			c.SetLive(true)
			reply, err := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 1}, make([]byte, tc.reply))
			require.NoError(t, err)
			require.NoError(t, c.Send(reply))
			l.ready.Run()

			reason := runUntilClosed(l, rec)
			got := p.drain()
			t.Logf("the peer sent %d bytes and received %d", sent, got)
			assert.NotZero(t, got, "the reply's first bytes went out")
			assert.LessOrEqual(t, got, Amplification*sent, "bytes sent to a peer that never acknowledged")
			assert.NotZero(t, s.Stats().AmplificationDropped)
			assert.Zero(t, s.Stats().Validated)
			assert.ErrorIs(t, reason, ErrNotValidated, "the conversation ends PendingTTL after it began")
		})
	}
}

// TestAnACKValidatesThePeer: once the peer acknowledges what the server sent it (the hello's
// reply), the limit is gone and the conversation lives past PendingTTL.
func TestAnACKValidatesThePeer(t *testing.T) {
	s, l, rec := newTestServer(t, Config{PendingTTL: 100 * time.Millisecond})
	p := newKCPPeer(t, s, l, 12)
	p.send(helloFrame(t, 250))
	c := s.byID[1]
	c.Establish()
	c.SetLive(true)
	small, _ := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 1}, []byte("hello's reply"))
	require.NoError(t, c.Send(small))
	l.ready.Run()
	p.receive(1) // and ACKs it
	require.True(t, c.Validated())
	assert.Equal(t, uint64(1), s.Stats().Validated)

	big, _ := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 2}, make([]byte, 20_000))
	require.NoError(t, c.Send(big))
	l.ready.Run()
	frames := p.receive(1)
	assert.Len(t, frames[0], len(big)-4, "a validated peer gets all of it")
	for l.clock.Nanos()-c.created < int64(time.Second) {
		time.Sleep(10 * time.Millisecond)
		l.iterate()
	}
	assert.Empty(t, rec.closed, "a validated conversation outlives PendingTTL")
}

// TestBlindACKsDoNotValidate: a forger cannot see what the server sends, so it acknowledges
// blind: segment 0 (KCP's first sequence number) with the server's KCP clock as ts (what the
// segment carried before the offset), and una past it. None of that validates the address, and
// a few wrong ACKs close the conversation.
func TestBlindACKsDoNotValidate(t *testing.T) {
	s, l, rec := newTestServer(t, Config{})
	p := newKCPPeer(t, s, l, 13)
	p.send(helloFrame(t, 250))
	c := s.byID[1]
	c.Establish()
	small, _ := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 1}, []byte("reply"))
	require.NoError(t, c.Send(small))
	l.ready.Run()
	require.NotZero(t, c.nSentTS)
	serverClock := c.sentTS[0] // the ts before the offset: the best a forger can guess

	// A push with una 1 acknowledges segment 0 in KCP's eyes, but proves nothing.
	s.Inject(withUna(pushSegment(13, 1, nil), 1), p.from)
	assert.False(t, c.Validated(), "una is not an acknowledgment of the address")
	for i := range maxBadACKs + 1 {
		ack := make([]byte, kcp.IKCP_OVERHEAD)
		binary.LittleEndian.PutUint32(ack, 13)
		ack[4] = kcp.IKCP_CMD_ACK
		binary.LittleEndian.PutUint32(ack[8:], serverClock+uint32(i))
		s.Inject(ack, p.from)
		assert.False(t, c.Validated(), "a blind ACK validated the peer")
	}
	require.Len(t, rec.closed, 1)
	assert.True(t, errors.Is(rec.closed[0], ErrNotValidated))
}

func withUna(seg []byte, una uint32) []byte {
	binary.LittleEndian.PutUint32(seg[16:], una)
	return seg
}
