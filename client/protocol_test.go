package client

import (
	"errors"
	"testing"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestPublicConstantsAreTheProtocols: the SDK's own types (Code, EventKind, MaxMGetKeys) keep
// the protocol's values, which the server takes from packages task and wire.
func TestPublicConstantsAreTheProtocols(t *testing.T) {
	for n := range 40 {
		if got, want := Code(n).String(), task.Code(n).String(); got != want {
			t.Errorf("Code(%d) = %q, the protocol says %q", n, got, want)
		}
	}
	kinds := map[EventKind]uint32{EventSet: task.PushSet, EventDelete: task.PushDelete,
		EventExpire: task.PushExpire, EventResync: task.PushResync}
	for k, want := range kinds {
		if uint32(k) != want {
			t.Errorf("EventKind %s = %d, the protocol says %d", k, k, want)
		}
	}
	if MaxMGetKeys != wire.MaxMGetKeys {
		t.Errorf("MaxMGetKeys = %d, the protocol says %d", MaxMGetKeys, wire.MaxMGetKeys)
	}
}

// TestServerErrorsCarryTheirCode: an error reply is a *ServerError with the SDK's Code and the
// server's message, matching its sentinel.
func TestServerErrorsCarryTheirCode(t *testing.T) {
	cases := []struct {
		code task.Code
		want error
	}{
		{task.CodeNotFound, ErrNotFound}, {task.CodeExists, ErrExists},
		{task.CodeVersionMismatch, ErrVersionMismatch}, {task.CodeNotCounter, ErrNotCounter},
		{task.CodeTooLarge, ErrTooLarge}, {task.CodeBadRequest, ErrBadRequest},
		{task.CodeUnknownOp, ErrUnknownOp}, {task.CodeUnauthorized, ErrUnauthorized},
		{task.CodeBusy, ErrBusy}, {task.CodeUnavailable, ErrUnavailable}, {task.CodeTimeout, ErrTimeout},
		{task.CodeInternal, ErrInternal}, {task.CodeDisabled, ErrDisabled}, {task.CodeVersion, ErrProtocol},
		{task.Code(99), ErrInternal},
	}
	code := map[string]task.Code{} // the key asks for the code; written before the server starts
	for _, tc := range cases {
		code[tc.code.String()] = tc.code
	}
	addr := startFake(t, sessionless(func(h *wire.Header, _ []byte) (*wire.Header, []byte) {
		return &wire.Header{Code: code[string(h.Key)], Msg: "because"}, nil
	}))
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			_, err := c.Get(t.Context(), tc.code.String())
			var se *ServerError
			if !errors.As(err, &se) {
				t.Fatalf("Get = %v, want a *ServerError", err)
			}
			if se.Code != Code(tc.code) || se.Msg != "because" {
				t.Errorf("ServerError = {%v, %q}, want {%v, %q}", se.Code, se.Msg, Code(tc.code), "because")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("%v does not match %v", err, tc.want)
			}
			if want := "pipecache: " + tc.code.String() + ": because"; err.Error() != want {
				t.Errorf("error text %q, want %q", err, want)
			}
		})
	}
}
