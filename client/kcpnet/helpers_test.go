//go:build linux

package kcpnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// bareConfig admits conversations as fast as tests open them (the defaults allow 250 new ones
// per second from one address).
func bareConfig() transport.Config {
	return transport.Config{Addr: "127.0.0.1:0", PendingRate: 1 << 20, SourceRate: 1 << 20,
		PendingPerSource: 1 << 16, MaxPending: 1 << 16, MaxConns: 1 << 20}
}

// startBare runs the network stage alone: it answers ping itself and echo through its reply
// queue, without sessions.
func startBare(tb testing.TB, cfg transport.Config) *stages.Incoming {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	in, err := stages.NewIncoming(stages.IncomingConfig{Transport: cfg, MaxValue: wire.MaxValue,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(tb, err)
	require.NoError(tb, in.Start())
	tb.Cleanup(func() { in.Stop(context.Background()) })
	return in
}

func newTestEngine(tb testing.TB, cfg Config) *Engine {
	tb.Helper()
	e, err := NewEngine(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { e.Close() })
	return e
}

// rpc is a minimal request/reply client over a conversation, as the SDK is: requests carry ids,
// the handler matches replies to their waiting callers.
type rpc struct {
	send func(frame []byte) error

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	bufs    sync.Pool

	done   chan struct{}
	reason error // set before done is closed
}

type reply struct {
	h     wire.Header
	value []byte
}

func newRPC() *rpc {
	return &rpc{pending: map[uint64]chan reply{}, done: make(chan struct{})}
}

// Frame implements Handler (and serves the kcp-go reader in benchmarks).
func (r *rpc) Frame(_ *Conn, body []byte) { r.frame(body) }

func (r *rpc) frame(body []byte) {
	var h wire.Header
	v, err := wire.Decode(body, &h)
	if err != nil {
		return
	}
	r.mu.Lock()
	ch := r.pending[h.ID]
	delete(r.pending, h.ID)
	r.mu.Unlock()
	if ch != nil {
		ch <- reply{h: h, value: append([]byte(nil), v...)}
	}
}

// Closed implements Handler.
func (r *rpc) Closed(_ *Conn, reason error) {
	r.reason = reason
	close(r.done)
}

// call sends one request and waits for its reply.
func (r *rpc) call(ctx context.Context, op task.Op, value []byte) (reply, error) {
	ch := make(chan reply, 1)
	r.mu.Lock()
	r.nextID++
	id := r.nextID
	r.pending[id] = ch
	r.mu.Unlock()
	bp, _ := r.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	frame, err := wire.AppendFrame((*bp)[:0], &wire.Header{V: wire.Version, Op: op, ID: id}, value)
	if err == nil {
		err = r.send(frame)
	}
	*bp = frame[:0]
	r.bufs.Put(bp)
	if err != nil {
		return reply{}, err
	}
	select {
	case rep := <-ch:
		if rep.h.Code != task.CodeOK {
			return rep, fmt.Errorf("reply code %d: %s", rep.h.Code, rep.h.Msg)
		}
		return rep, nil
	case <-r.done:
		return reply{}, fmt.Errorf("conversation closed: %w", r.reason)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// dialRPC opens a conversation to addr with an rpc handler.
func dialRPC(tb testing.TB, e *Engine, addr netip.AddrPort, o DialOptions) (*rpc, *Conn) {
	tb.Helper()
	r := newRPC()
	o.Handler = r
	c, err := e.DialAddrPort(addr, o)
	require.NoError(tb, err)
	r.send = c.Send
	tb.Cleanup(func() { c.Close() })
	return r, c
}

// waitClosed waits (bounded) for the conversation's end and returns its reason.
func (r *rpc) waitClosed(tb testing.TB) error {
	tb.Helper()
	select {
	case <-r.done:
		return r.reason
	case <-time.After(pctest.Timeout):
		tb.Fatalf("conversation not closed after %v", pctest.Timeout)
		return errors.New("not closed")
	}
}
