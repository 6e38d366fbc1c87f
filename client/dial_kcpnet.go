//go:build linux && !pipecache_udpsession

package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/pipecache/pipecache/client/kcpnet"
)

// The SDK's transport on Linux: each session is a conversation of the process's kcpnet engine
// (kcpnet.Default): one I/O loop shared by every Client and every node of every Cluster, no
// goroutine per session. Frames reach dispatch on the engine's loop goroutine, in stream order,
// and the conversation's end reaches sessionFailed there too: neither may block (see dispatch).
// Off Linux (or built with the tag pipecache_udpsession) a session is a kcp-go UDPSession with
// a reader goroutine instead: dial_udpsession.go, with the same behaviour.

// link is a session's conversation.
type link struct{ conn *kcpnet.Conn }

// openLink opens s's conversation with the server. Nothing is sent until the first frame.
func (c *Client) openLink(s *session) error {
	e, err := kcpnet.Default()
	if err != nil {
		return err
	}
	conn, err := e.Dial(c.addr, kcpnet.DialOptions{Handler: sessionHandler{c: c, s: s},
		Crypt: c.opts.crypt, Window: c.opts.window})
	if err != nil {
		return err
	}
	s.link.conn = conn
	return nil
}

// sessionHandler receives one session's frames and its end, on the engine's loop goroutine.
type sessionHandler struct {
	c *Client
	s *session
}

// Frame implements kcpnet.Handler.
func (h sessionHandler) Frame(_ *kcpnet.Conn, body []byte) { h.c.dispatch(h.s, body) }

// Closed implements kcpnet.Handler: a refusal (kcpnet.ErrRefused: nothing listens at the
// address), or the end of a conversation the client closed itself (then sessionFailed has
// already run for it, and does nothing more).
func (h sessionHandler) Closed(_ *kcpnet.Conn, reason error) { h.c.sessionFailed(h.s, reason) }

// send queues one whole frame (the engine copies it, and never interleaves frames). A full send
// queue is errSendQueueFull (writeFrame waits); any other error wraps errSendFailed.
func (l *link) send(frame []byte) error {
	err := l.conn.Send(frame)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kcpnet.ErrSendQueueFull):
		return errSendQueueFull
	}
	return fmt.Errorf("%w: %w", errSendFailed, err)
}

// close ends the conversation; what is queued is flushed once.
func (l *link) close() { l.conn.Close() }

// refused reports whether the server's address answered with an ICMP port unreachable.
func (l *link) refused() bool { return errors.Is(l.conn.Err(), kcpnet.ErrRefused) }

// heardSince reports whether any datagram (an acknowledgment too) came from the server at or
// after unixNanos.
func (l *link) heardSince(unixNanos int64) bool { return l.conn.LastHeard().UnixNano() >= unixNanos }

// lastData returns when the server last sent stream data on the conversation (zero: never).
func (l *link) lastData() time.Time { return l.conn.LastData() }
