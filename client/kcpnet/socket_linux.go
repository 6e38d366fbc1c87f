//go:build linux

package kcpnet

import (
	"fmt"
	"net/netip"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/transport/dgram"
)

// socket is one unconnected UDP socket shared by conversations of one encryption key and
// address family.
type socket struct {
	idx    int // in Engine.socks; its epoll token is idx+1
	fd     int
	family int
	local  netip.AddrPort
	crypt  kcp.BlockCrypt
	kcpMTU int // KCP's MTU here: Config.MTU less the encryption header

	loopOut *sendBatch // datagrams produced on the loop goroutine; loop only
	out     *sendBatch // datagrams produced by senders; holder of Engine.sendMu only
	closed  bool       // set under Engine.sendMu, with the loop stopped: no more sends
}

// openSocket opens a non-blocking UDP socket of family bound to an ephemeral port of local (if
// valid; else of every address), with IP_RECVERR so that ICMP errors for any destination reach
// its error queue (an unconnected socket hears nothing otherwise).
func openSocket(family, bufSize int, local netip.Addr) (dgram.Socket, error) {
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if family == unix.AF_INET6 {
			local = netip.IPv6Unspecified()
		}
	}
	s, err := dgram.Listen(dgram.SocketOptions{Addr: netip.AddrPortFrom(local, 0), Buffer: bufSize, RecvErr: true})
	if err != nil {
		return dgram.Socket{}, fmt.Errorf("kcpnet: %w", err)
	}
	return s, nil
}

// sendBatch is a socket's dgram.SendBatch, counted in the engine's stats. It belongs to one
// goroutine at a time (see socket.loopOut and socket.out).
type sendBatch struct {
	b        *dgram.SendBatch
	overhead int // what sealing adds to a datagram
	st       *counters
}

func newSendBatch(s dgram.Socket, n int, block kcp.BlockCrypt, st *counters) *sendBatch {
	return &sendBatch{b: dgram.NewSendBatch(s.FD, s.Family, n, block), overhead: dgram.Overhead(block), st: st}
}

// queue adds the datagram a+p (p may be empty) for to, sending the batch first if it is full.
// The caller keeps a+p within the socket's KCP MTU.
func (b *sendBatch) queue(to netip.AddrPort, a, p []byte) {
	if !b.b.Queue(to, a, p) {
		b.flush()
		if !b.b.Queue(to, a, p) {
			b.st.sendDropped.Add(1) // larger than any datagram: cannot happen within the MTU
			return
		}
	}
	b.st.bytesOut.Add(uint64(len(a) + len(p) + b.overhead))
}

// pending reports whether datagrams wait to be sent.
func (b *sendBatch) pending() bool { return b.b.Len() > 0 }

// flush sends the queued datagrams. What the kernel refuses is dropped and counted, and so is
// the rest of the batch on a full socket buffer (EAGAIN): to KCP they are lost datagrams,
// resent at their RTO. (The server waits for EPOLLOUT instead: its batch is all its
// conversations' output, the engine's a few callers'.)
func (b *sendBatch) flush() {
	r, err := b.b.Send()
	b.st.sendCalls.Add(uint64(r.Calls))
	b.st.datagramsOut.Add(uint64(r.Datagrams))
	b.st.sendDropped.Add(uint64(r.Dropped))
	if err != nil {
		b.st.sendDropped.Add(uint64(b.b.Discard()))
	}
}
