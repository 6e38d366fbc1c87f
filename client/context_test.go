package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errCause = errors.New("the caller's reason")

// ctxCases are the ways a call's context ends, and what the error must then match.
var ctxCases = []struct {
	name     string
	ctx      func() (context.Context, context.CancelFunc)
	opts     []Option
	canceled bool // errors.Is(err, context.Canceled); otherwise ErrTimeout and DeadlineExceeded
	cause    bool // errors.Is(err, errCause)
}{
	{name: "cancelled", ctx: func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}, canceled: true},
	{name: "cancelled with a cause", ctx: func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errCause)
		return ctx, func() {}
	}, canceled: true, cause: true},
	{name: "deadline", ctx: func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 50*time.Millisecond)
	}},
	{name: "dial timeout", ctx: func() (context.Context, context.CancelFunc) {
		return context.Background(), func() {}
	}, opts: []Option{WithDialTimeout(50 * time.Millisecond)}},
}

func checkCtxErr(t *testing.T, err error, canceled, cause bool) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
	if canceled {
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v: want context.Canceled, and neither ErrTimeout nor DeadlineExceeded", err)
		}
	} else if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("%v: want ErrTimeout and context.DeadlineExceeded, not Canceled", err)
	}
	if cause && !errors.Is(err, errCause) {
		t.Errorf("%v: want the cancellation's cause", err)
	}
}

// TestDialContextReportsHowItEnded: against a server that never answers, DialContext fails
// with what ended it: a cancellation is context.Canceled (not a timeout), a deadline or the
// dial timeout is ErrTimeout and context.DeadlineExceeded.
func TestDialContextReportsHowItEnded(t *testing.T) {
	addr := startFake(t, silent)
	for _, tc := range ctxCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			c, err := DialContext(ctx, addr, tc.opts...)
			if err == nil {
				c.Close()
			}
			checkCtxErr(t, err, tc.canceled, tc.cause)
		})
	}
}

// TestCallReportsHowItsContextEnded: a call the server does not answer fails with what ended
// its context, on a Client and on a Cluster.
func TestCallReportsHowItsContextEnded(t *testing.T) {
	addr := startFake(t, sessionless(nil)) // sessions and pings, but no get is ever answered
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := DialCluster(context.Background(), StaticNodes(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tc := range ctxCases {
		if tc.opts != nil {
			continue // a dial option: not about calls
		}
		for name, kv := range map[string]Cache{"client": c, "cluster": cl} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := tc.ctx()
				defer cancel()
				_, err := kv.Get(ctx, "k")
				checkCtxErr(t, err, tc.canceled, tc.cause)
			})
		}
	}
}

// nodesNever never reports a node set.
type nodesNever struct{}

func (nodesNever) Watch(context.Context, func([]string)) error { return nil }

func TestDialClusterReportsHowItEnded(t *testing.T) {
	for _, tc := range ctxCases {
		if tc.opts != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			cl, err := DialCluster(ctx, nodesNever{})
			if err == nil {
				cl.Close()
			}
			checkCtxErr(t, err, tc.canceled, tc.cause)
		})
	}
}
