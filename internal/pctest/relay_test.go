package pctest

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLossyRelayDropsDuplicatesAndReorders: at 10%, each of the three happens to some of the
// datagrams one direction carries, and what it sends is only what it was given.
func TestLossyRelayDropsDuplicatesAndReorders(t *testing.T) {
	r := &LossyRelay{loss: 0.10, rng: rand.New(rand.NewPCG(1, 2))}
	const n = 3000
	var d held
	seen := map[uint64]int{}
	var order []uint64
	for i := range uint64(n) {
		r.deliver(&d, binary.BigEndian.AppendUint64(nil, i), func(b []byte) {
			v := binary.BigEndian.Uint64(b)
			seen[v]++
			order = append(order, v)
		})
	}
	var dropped, duplicated, reordered int
	for i := range uint64(n) {
		switch seen[i] {
		case 0:
			dropped++
		case 2:
			duplicated++
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			reordered++
		}
	}
	for v := range seen {
		assert.Less(t, v, uint64(n), "sent a datagram it was not given")
	}
	assert.InDelta(t, n/10, dropped, n/20, "dropped")
	assert.InDelta(t, n/10, duplicated, n/20, "duplicated")
	assert.Positive(t, reordered, "reordered")
}

// TestLossyRelayForwardsBothWays: without loss, a datagram reaches the server from the relay's
// socket for its client, and the server's reply reaches the client.
func TestLossyRelayForwardsBothWays(t *testing.T) {
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	r := NewLossyRelay(t, server.LocalAddr().(*net.UDPAddr).AddrPort(), 0)
	client, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.Addr()))
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })

	require.NoError(t, client.SetDeadline(time.Now().Add(Timeout)))
	require.NoError(t, server.SetDeadline(time.Now().Add(Timeout)))
	_, err = client.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 64)
	n, from, err := server.ReadFromUDP(buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf[:n]))
	_, err = server.WriteToUDP([]byte("pong"), from)
	require.NoError(t, err)
	n, err = client.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "pong", string(buf[:n]))
}
