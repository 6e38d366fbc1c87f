package client

import (
	"errors"
	"fmt"

	"github.com/pipecache/pipecache/task"
)

// Errors a call can return. Errors from the server wrap one of these (test with errors.Is) and
// carry the server's message.
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

// errNotSent: the request was not sent (no session: the client is reconnecting).
var errNotSent = fmt.Errorf("%w: reconnecting", ErrUnavailable)

var codeErrors = map[task.Code]error{
	task.CodeNotFound: ErrNotFound, task.CodeExists: ErrExists,
	task.CodeVersionMismatch: ErrVersionMismatch, task.CodeNotCounter: ErrNotCounter,
	task.CodeTooLarge: ErrTooLarge, task.CodeBadRequest: ErrBadRequest,
	task.CodeUnknownOp: ErrUnknownOp, task.CodeUnauthorized: ErrUnauthorized,
	task.CodeBusy: ErrBusy, task.CodeUnavailable: ErrUnavailable, task.CodeTimeout: ErrTimeout,
	task.CodeInternal: ErrInternal, task.CodeDisabled: ErrDisabled, task.CodeVersion: ErrProtocol,
	task.CodeOverflow: ErrOverflow, task.CodeLimit: ErrLimit,
}

// ServerError is an error reply: its code, the server's message, and the sentinel it matches.
type ServerError struct {
	Code task.Code
	Msg  string
}

func (e *ServerError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("pipecache: %s", e.Code)
	}
	return fmt.Sprintf("pipecache: %s: %s", e.Code, e.Msg)
}

// Unwrap returns the sentinel for the code, so errors.Is(err, ErrNotFound) works.
func (e *ServerError) Unwrap() error {
	if s, ok := codeErrors[e.Code]; ok {
		return s
	}
	return ErrInternal
}
