package client

import (
	"sync"
	"testing"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// fakeHandler answers one request: the reply's header (V, ID and Op are filled in) and value,
// or nil for no answer at all.
type fakeHandler func(h *wire.Header, value []byte) (*wire.Header, []byte)

// startFake runs a KCP server on 127.0.0.1:0 that answers with handle, and returns its
// address. It stops when the test ends.
func startFake(tb testing.TB, handle fakeHandler) string {
	tb.Helper()
	ln, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var sessions []*kcp.UDPSession
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			s, err := ln.AcceptKCP()
			if err != nil {
				return
			}
			s.SetStreamMode(true)
			s.SetNoDelay(1, 10, 2, 1)
			mu.Lock()
			sessions = append(sessions, s)
			mu.Unlock()
			wg.Go(func() { serveFake(s, handle) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, s := range sessions {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func serveFake(s *kcp.UDPSession, handle fakeHandler) {
	var sp wire.Splitter
	var out []byte
	for {
		n, err := s.Read(sp.Buffer(64 << 10))
		if err != nil {
			return
		}
		sp.Commit(n)
		for {
			body, err := sp.Next()
			if err != nil || body == nil {
				break
			}
			var h wire.Header
			value, err := wire.Decode(body, &h)
			if err != nil || h.ID == 0 {
				continue
			}
			rep, rv := handle(&h, value)
			if rep == nil {
				continue
			}
			rep.V, rep.ID = wire.Version, h.ID
			if rep.Op == task.OpNone {
				rep.Op = h.Op
			}
			out, _ = wire.AppendFrame(out[:0], rep, rv)
			if _, err := s.Write(out); err != nil {
				return
			}
		}
	}
}

// sessionless answers like a server without sessions: hello and heartbeat are unknown ops (so
// Dial succeeds without a session), ping is answered, and everything else goes to next (nil:
// no answer).
func sessionless(next fakeHandler) fakeHandler {
	return func(h *wire.Header, value []byte) (*wire.Header, []byte) {
		switch h.Op {
		case task.OpHello, task.OpHeartbeat:
			return &wire.Header{Code: task.CodeUnknownOp}, nil
		case task.OpPing:
			return &wire.Header{}, nil
		}
		if next == nil {
			return nil, nil
		}
		return next(h, value)
	}
}

// silent never answers anything, not even the hello.
func silent(*wire.Header, []byte) (*wire.Header, []byte) { return nil, nil }
