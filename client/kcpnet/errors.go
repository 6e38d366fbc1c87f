package kcpnet

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors. A conversation's end reason (Handler.Closed, Conn.Err) wraps one of ErrClosed,
// ErrEngineClosed, ErrRefused or ErrBadStream.
var (
	// ErrClosed: the conversation was closed by its owner (Conn.Close). Send on any closed
	// conversation returns an error wrapping it (and the reason, if another).
	ErrClosed = errors.New("kcpnet: conversation closed")
	// ErrEngineClosed: the engine was closed, and with it every conversation.
	ErrEngineClosed = errors.New("kcpnet: engine closed")
	// ErrRefused: an ICMP port unreachable came back from the conversation's address: nothing
	// listens there. It also matches syscall.ECONNREFUSED with errors.Is.
	ErrRefused = fmt.Errorf("kcpnet: %w", syscall.ECONNREFUSED)
	// ErrBadStream: the peer sent a stream that is not a sequence of frames (a length prefix out
	// of range); it cannot be resynchronised.
	ErrBadStream = errors.New("kcpnet: malformed stream")
	// ErrSendQueueFull: the conversation has more than Config.MaxSendQueue segments queued or
	// unacknowledged; the peer is not keeping up (or is gone). Nothing was queued.
	ErrSendQueueFull = errors.New("kcpnet: send queue full")
	// ErrUnsupported: this platform has no engine (Linux only).
	ErrUnsupported = errors.New("kcpnet: not supported on this platform")
	// ErrBadConfig: a Config or DialOptions field is out of range.
	ErrBadConfig = errors.New("kcpnet: bad configuration")
)

// closedError returns what Send reports on a conversation closed for reason.
func closedError(reason error) error {
	if reason == nil || reason == ErrClosed {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, reason)
}

// refusedError is the reason of a conversation closed by a port unreachable from addr.
func refusedError(addr fmt.Stringer) error {
	return fmt.Errorf("%w: nothing listening at %s", ErrRefused, addr)
}

func wrapBadStream(err error) error { return fmt.Errorf("%w: %w", ErrBadStream, err) }
