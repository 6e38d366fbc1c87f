//go:build linux

package client

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/xtaci/kcp-go/v5"
)

// dialKCP opens a KCP session to addr over a *connected* UDP socket. kcp-go's own
// DialWithOptions leaves its socket unconnected, and the kernel reports an ICMP
// port-unreachable only to a connected UDP socket: with one, a server that is not listening
// makes the session's next read fail with ECONNREFUSED at once (see refusal), instead of the
// hello waiting out the dial timeout. On Linux kcp-go sends with sendmmsg, which accepts the
// destination address on a connected socket.
//
// This is the only place the SDK builds its socket; it goes away with the SDK's own transport.
func dialKCP(addr string, block kcp.BlockCrypt) (*kcp.UDPSession, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	network := "udp4" // as kcp-go does: an IPv4 socket for an IPv4 server
	if raddr.IP.To4() == nil {
		network = "udp"
	}
	conn, err := net.DialUDP(network, nil, raddr)
	if err != nil {
		return nil, err
	}
	var conv [4]byte
	rand.Read(conv[:])
	s, err := kcp.NewConn4(binary.LittleEndian.Uint32(conv[:]), raddr, block, 0, 0, true, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("kcp session: %w", err)
	}
	return s, nil
}
