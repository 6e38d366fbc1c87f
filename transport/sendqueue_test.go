package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// pump lets the peer read and acknowledge what the server sends, and the server act on the
// ACKs, until cond holds (a minute at most).
func (p *kcpPeer) pump(cond func() bool) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(time.Minute)
	for !cond() && time.Now().Before(deadline) {
		require.NoError(p.t, p.sock.SetReadDeadline(time.Now().Add(5*time.Millisecond)))
		if n, err := p.sock.Read(buf); err == nil {
			p.k.Input(buf[:n], kcp.IKCP_PACKET_REGULAR, false)
			for p.k.PeekSize() >= 0 {
				m := p.k.Recv(p.in.Buffer(p.k.PeekSize()))
				p.in.Commit(m)
			}
		}
		dgram.Flush(p.k, kcp.IKCP_FLUSH_FULL) // ACKs: into the server's input
		p.l.iterate()
	}
	require.True(p.t, cond(), "the condition never held")
}

// TestFullSendQueueIsBackPressureNotSilence: a conversation whose peer does not acknowledge
// fast enough is not read while its send queue is over SendQueueHigh (its requests wait, in
// order); a frame of several segments that would take the queue over MaxSendQueue is refused,
// but a frame of one segment (an error reply, a heartbeat's reply) never is. Once the peer's
// ACKs drain the queue, the requests that waited are read.
func TestFullSendQueueIsBackPressureNotSilence(t *testing.T) {
	s, l, rec := newTestServer(t, Config{MaxSendQueue: 100, SendQueueHigh: 20})
	p := newKCPPeer(t, s, l, 21)
	p.send(helloFrame(t, 250))
	require.Len(t, rec.frames, 1)
	c := s.byID[1]
	c.Establish()
	c.validated = true // as after the ACK of the hello's reply

	big, _ := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 1}, make([]byte, 30*s.frameRoom))
	require.NoError(t, c.Send(big)) // 31 segments, all unacknowledged: over SendQueueHigh
	p.send(frameOf(t, 1))
	p.send(frameOf(t, 2))
	assert.Len(t, rec.frames, 1, "requests are not read while the send queue is over SendQueueHigh")

	require.NoError(t, c.Send(big))
	require.NoError(t, c.Send(big))
	assert.ErrorIs(t, c.Send(big), ErrSendQueueFull, "a large frame over MaxSendQueue")
	small, _ := wire.AppendFrame(nil, &wire.Header{V: 1, ID: 9, Code: 9}, nil)
	for range 50 {
		require.NoError(t, c.Send(small), "a frame of one segment is never refused")
	}

	p.pump(func() bool { return len(rec.frames) == 3 })
	assert.Equal(t, frameOf(t, 1)[4:], rec.frames[1], "in order")
	assert.Equal(t, frameOf(t, 2)[4:], rec.frames[2])
	assert.LessOrEqual(t, c.engine().WaitSnd(), s.cfg.SendQueueHigh)
}
