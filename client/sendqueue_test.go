//go:build linux && !pipecache_udpsession

package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestFullSendQueueWaitsWithinTheCallsContext: when the server stops taking data in, the
// session's send queue (kcpnet's MaxSendQueue) fills; a call then waits for room within its
// context and fails with ErrTimeout saying so, and the session survives (a full queue is
// back-pressure, not a dead session).
func TestFullSendQueueWaitsWithinTheCallsContext(t *testing.T) {
	stuck := make(chan struct{})
	addr := startFake(t, func(h *wire.Header, v []byte) (*wire.Header, []byte) {
		if h.Op == task.OpSet {
			<-stuck // the server's reader stops: its KCP window fills, then ours
		}
		return sessionless(nil)(h, v)
	})
	t.Cleanup(func() { close(stuck) }) // before startFake's cleanup, which waits for its reader
	c, err := Dial(addr, WithHeartbeat(time.Second, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	value := make([]byte, wire.MaxValue) // about 3,100 segments each: MaxSendQueue is 8,192
	var full error
	for i := 0; i < 8 && full == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := c.Set(ctx, "k", value)
		cancel()
		switch {
		case err == nil:
			t.Fatal("a set was answered by a server that answers none")
		case strings.Contains(err.Error(), "send queue full"):
			full = err
		case !errors.Is(err, ErrTimeout):
			t.Fatalf("set %d: %v, want a timeout waiting for the reply", i, err)
		}
	}
	if full == nil {
		t.Fatal("the send queue never filled")
	}
	if !errors.Is(full, ErrTimeout) || !errors.Is(full, context.DeadlineExceeded) {
		t.Errorf("%v: want ErrTimeout and context.DeadlineExceeded", full)
	}
	if !c.Connected() {
		t.Error("a full send queue failed the session")
	}
}
