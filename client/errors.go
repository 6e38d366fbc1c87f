package client

import (
	"context"
	"errors"
	"fmt"
)

// Errors a call can return. Errors from the server wrap one of these (test with errors.Is) and
// carry the server's message.
//
// A call whose context ends reports it: for a deadline the error wraps both ErrTimeout and
// context.DeadlineExceeded; for a cancellation it wraps context.Canceled and not ErrTimeout.
// The SDK's own timeouts (WithDialTimeout, WithSilenceTimeout) are ErrTimeout.
var (
	ErrNotFound        = errors.New("pipecache: not found")
	ErrExists          = errors.New("pipecache: key exists")
	ErrVersionMismatch = errors.New("pipecache: version mismatch")
	ErrNotCounter      = errors.New("pipecache: value is not a counter")
	ErrTooLarge        = errors.New("pipecache: key or value too large")
	ErrBadRequest      = errors.New("pipecache: bad request")
	ErrUnknownOp       = errors.New("pipecache: operation not supported by the server")
	ErrUnauthorized    = errors.New("pipecache: unauthorized")
	ErrBusy            = errors.New("pipecache: server busy")
	ErrUnavailable     = errors.New("pipecache: unavailable")
	ErrTimeout         = errors.New("pipecache: timeout")
	ErrInternal        = errors.New("pipecache: server error")
	ErrDisabled        = errors.New("pipecache: feature disabled on the server")
	ErrProtocol        = errors.New("pipecache: protocol version not supported")
	ErrOverflow        = errors.New("pipecache: increment would overflow")
	ErrLimit           = errors.New("pipecache: server limit reached")
	ErrClosed          = errors.New("pipecache: client closed")
)

// Errors of Exec, a processor call (codes 17 to 19); with each of them nothing changed.
var (
	ErrUnknownProcessor = errors.New("pipecache: no such processor on the server")
	ErrWrongType        = errors.New("pipecache: value not readable by the processor")
	ErrOverBudget       = errors.New("pipecache: processor over its budget")
)

// errNotSent: the request was not sent (no session: the client is reconnecting).
var errNotSent = fmt.Errorf("%w: reconnecting", ErrUnavailable)

// errConnLost: the request was sent but its session was lost before the reply came.
var errConnLost = fmt.Errorf("%w: connection lost before the reply", ErrUnavailable)

// errSendFailed: the transport refused a frame because the session is dead (closed, refused);
// the session is failed and redialled.
var errSendFailed = fmt.Errorf("%w: send failed", ErrUnavailable)

// errSendQueueFull: the session's send queue is full; writeFrame waits for room, and never
// returns it.
var errSendQueueFull = errors.New("pipecache: send queue full")

// Code is a result code in a server's reply. The values and names are the protocol's
// (PROTOCOL.md, "Result codes"): they are never renumbered, and new ones may be added.
type Code uint16

// Result codes.
const (
	CodeOK              Code = 0
	CodeNotFound        Code = 1  // the key does not exist (or expired)
	CodeExists          Code = 2  // add on a key that exists
	CodeVersionMismatch Code = 3  // compare-and-set lost
	CodeNotCounter      Code = 4  // incr on a value that is not a decimal integer
	CodeTooLarge        Code = 5  // key or value over the server's limit
	CodeBadRequest      Code = 6  // malformed request
	CodeUnknownOp       Code = 7  // an operation the server does not serve
	CodeUnauthorized    Code = 8  // no hello, or a wrong token
	CodeBusy            Code = 9  // the server's queue is full: retry later
	CodeUnavailable     Code = 10 // the store is down, or the server is stopping
	CodeTimeout         Code = 11 // the store did not answer in time
	CodeInternal        Code = 12 // a server bug
	CodeDisabled        Code = 13 // the feature is switched off on the server
	CodeVersion         Code = 14 // unsupported protocol version
	CodeOverflow        Code = 15 // incr would leave the 64-bit range; nothing changed
	CodeLimit           Code = 16 // a per-session or per-server limit was reached
)

// Result codes of exec.
const (
	CodeUnknownProcessor Code = 17 // exec names a processor the server has not registered
	CodeWrongType        Code = 18 // exec on a value its processor cannot read
	CodeOverBudget       Code = 19 // exec: the processor took more steps or time than its budget
)

var codeNames = [...]string{
	CodeOK: "ok", CodeNotFound: "not_found", CodeExists: "exists",
	CodeVersionMismatch: "version_mismatch", CodeNotCounter: "not_counter",
	CodeTooLarge: "too_large", CodeBadRequest: "bad_request", CodeUnknownOp: "unknown_op",
	CodeUnauthorized: "unauthorized", CodeBusy: "busy", CodeUnavailable: "unavailable",
	CodeTimeout: "timeout", CodeInternal: "internal", CodeDisabled: "disabled",
	CodeVersion: "unsupported_version", CodeOverflow: "overflow", CodeLimit: "limit",
	CodeUnknownProcessor: "unknown_processor", CodeWrongType: "wrong_type", CodeOverBudget: "over_budget",
}

// String returns the code's name in the protocol ("not_found"), or "code(N)" for a code this
// SDK does not know.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

var codeErrors = [...]error{
	CodeNotFound: ErrNotFound, CodeExists: ErrExists,
	CodeVersionMismatch: ErrVersionMismatch, CodeNotCounter: ErrNotCounter,
	CodeTooLarge: ErrTooLarge, CodeBadRequest: ErrBadRequest,
	CodeUnknownOp: ErrUnknownOp, CodeUnauthorized: ErrUnauthorized,
	CodeBusy: ErrBusy, CodeUnavailable: ErrUnavailable, CodeTimeout: ErrTimeout,
	CodeInternal: ErrInternal, CodeDisabled: ErrDisabled, CodeVersion: ErrProtocol,
	CodeOverflow: ErrOverflow, CodeLimit: ErrLimit,
	CodeUnknownProcessor: ErrUnknownProcessor, CodeWrongType: ErrWrongType, CodeOverBudget: ErrOverBudget,
}

// ServerError is an error reply: its code, the server's message, and the sentinel it matches.
type ServerError struct {
	Code Code
	Msg  string
}

func (e *ServerError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("pipecache: %s", e.Code)
	}
	return fmt.Sprintf("pipecache: %s: %s", e.Code, e.Msg)
}

// Unwrap returns the sentinel for the code, so errors.Is(err, ErrNotFound) works. An unknown
// code is ErrInternal.
func (e *ServerError) Unwrap() error {
	if int(e.Code) < len(codeErrors) && codeErrors[e.Code] != nil {
		return codeErrors[e.Code]
	}
	return ErrInternal
}

// ctxError is the error of a call (what, e.g. "get 10.0.0.1:7070") whose context ended: for a
// deadline it wraps ErrTimeout and context.DeadlineExceeded, for a cancellation
// context.Canceled only; a cause given with context.WithCancelCause is wrapped too.
func ctxError(ctx context.Context, what string) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	}
	return fmt.Errorf("pipecache: %s: %w", what, err)
}
