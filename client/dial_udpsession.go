//go:build !linux || pipecache_udpsession

package client

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/wire"
)

// The SDK's transport off Linux, where client/kcpnet does not run (and on Linux when built with
// the tag pipecache_udpsession, to compare the two): each session is a kcp-go UDPSession with a
// reader goroutine of its own, which hands frames to dispatch in stream order and the end of
// the stream to sessionFailed. Behaviour as on Linux (dial_kcpnet.go).

// link is a session's KCP session and what its reader learns.
type link struct {
	kcp     *kcp.UDPSession
	readErr atomic.Pointer[error] // why the reader stopped; stored before it fails the calls
	heard   atomic.Int64          // unix nanos of the last data read; 0: none
}

// openLink opens s's KCP session and starts its reader.
func (c *Client) openLink(s *session) error {
	ks, err := dialKCP(c.addr, c.opts.crypt)
	if err != nil {
		return err
	}
	ks.SetStreamMode(true)
	ks.SetNoDelay(1, 10, 2, 1) // fast mode: 10 ms interval, fast resend, no congestion window
	ks.SetWindowSize(c.opts.window, c.opts.window)
	ks.SetACKNoDelay(false) // ACKs ride on the next request or the next 10 ms flush
	ks.SetReadBuffer(4 << 20)
	ks.SetWriteBuffer(4 << 20)
	s.link.kcp = ks
	c.wg.Add(1)
	go c.read(s)
	return nil
}

// read is a session's reader goroutine: it cuts frames out of the stream and dispatches them.
func (c *Client) read(s *session) {
	defer c.wg.Done()
	var sp wire.Splitter
	for {
		n, err := s.link.kcp.Read(sp.Buffer(64 << 10))
		if err != nil {
			s.link.readErr.Store(&err)
			c.sessionFailed(s, err)
			return
		}
		sp.Commit(n)
		s.link.heard.Store(time.Now().UnixNano())
		for {
			body, err := sp.Next()
			if err != nil {
				c.log.Error("malformed stream from server", "addr", c.addr, "err", err)
				c.sessionFailed(s, err)
				return
			}
			if body == nil {
				break
			}
			c.dispatch(s, body)
		}
		sp.Shrink(1 << 20)
	}
}

// send writes one whole frame (one Write per frame: frames never interleave). kcp-go's Write
// waits for room in the window itself, so errSendQueueFull never comes from here; any error
// wraps errSendFailed.
func (l *link) send(frame []byte) error {
	if _, err := l.kcp.Write(frame); err != nil {
		return fmt.Errorf("%w: %w", errSendFailed, err)
	}
	return nil
}

// close ends the session; the reader then fails with io.ErrClosedPipe.
func (l *link) close() { l.kcp.Close() }

// refused reports whether the session's socket was refused: an ICMP port unreachable came back
// (on Linux, where the socket is connected: see dialKCP), so nothing listens at the address.
func (l *link) refused() bool {
	err := l.readErr.Load()
	return err != nil && errors.Is(*err, syscall.ECONNREFUSED)
}

// heardSince reports true: a kcp-go UDPSession does not say when its last datagram came, so a
// call to a silent server waits for its context here (WithUnreachableAfter is Linux's).
func (l *link) heardSince(int64) bool { return true }

// lastData returns when the reader last read data (zero: never).
func (l *link) lastData() time.Time {
	if n := l.heard.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// dialKCP opens a KCP session to addr. On Linux the socket is *connected*: kcp-go's own
// DialWithOptions leaves its socket unconnected, and the kernel reports an ICMP port unreachable
// only to a connected UDP socket; with one, a server that is not listening makes the session's
// next read fail with ECONNREFUSED at once instead of the hello waiting out the dial timeout
// (kcp-go sends with sendmmsg there, which accepts the destination on a connected socket).
// Elsewhere kcp-go sends with WriteTo, which a connected socket refuses, so the session keeps
// kcp-go's unconnected socket and a server that is not listening is noticed only when the hello
// times out.
func dialKCP(addr string, block kcp.BlockCrypt) (*kcp.UDPSession, error) {
	if runtime.GOOS != "linux" {
		return kcp.DialWithOptions(addr, block, 0, 0)
	}
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
