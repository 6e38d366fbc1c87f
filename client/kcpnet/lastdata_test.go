//go:build linux

package kcpnet

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/transport/dgram"
)

// TestLastDataIgnoresACKs: a datagram of ACKs alone is heard (LastHeard) but is not data
// (LastData); a datagram with stream bytes is both. The peer is a raw KCP over a UDP socket,
// so that it can ACK without answering.
func TestLastDataIgnoresACKs(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	e := newTestEngine(t, Config{})
	r, c := dialRPC(t, e, peer.LocalAddr().(*net.UDPAddr).AddrPort(), DialOptions{})

	var to *net.UDPAddr
	k := kcp.NewKCP(c.Conv(), func(b []byte, n int) {
		_, err := peer.WriteToUDP(b[:n], to)
		require.NoError(t, err)
	})
	k.NoDelay(1, 10, 2, 1)
	// receive reads one datagram from the engine into the peer's KCP.
	receive := func() {
		buf := make([]byte, 2048)
		require.NoError(t, peer.SetReadDeadline(time.Now().Add(pctest.Timeout)))
		n, from, err := peer.ReadFromUDP(buf)
		require.NoError(t, err)
		to = from
		require.GreaterOrEqual(t, k.Input(buf[:n], kcp.IKCP_PACKET_REGULAR, true), 0)
	}

	require.NoError(t, c.Send([]byte{0, 0, 0, 4, 0, 2, '{', '}'}))
	receive()
	dgram.Flush(k, kcp.IKCP_FLUSH_FULL) // the ACK of that segment, alone
	pctest.WaitFor(t, func() bool { return !c.LastHeard().IsZero() }, "nothing ever heard from the peer")
	pctest.WaitFor(t, func() bool { return c.WaitSnd() == 0 }, "the send window never emptied: no ACK taken in") // the engine took the ACK in
	assert.True(t, c.LastData().IsZero(), "an ACK alone is not data")
	ackHeard := c.LastHeard()

	frame := []byte{0, 0, 0, 2, '{', '}'}
	k.Send(frame[:3]) // part of a frame is data too
	dgram.Flush(k, kcp.IKCP_FLUSH_FULL)
	pctest.WaitFor(t, func() bool { return !c.LastData().IsZero() }, "no data ever heard from the peer")
	assert.False(t, c.LastData().Before(ackHeard), "the data came after the ACK")
	select {
	case <-r.done:
		t.Fatalf("conversation closed: %v", r.reason)
	default:
	}
}
