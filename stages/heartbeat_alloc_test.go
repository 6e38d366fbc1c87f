package stages_test

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// bareSession is a session spoken over a bare KCP conversation on a UDP socket, driven by the
// test's goroutine: no SDK, no goroutines of its own, nothing that allocates once warmed up.
type bareSession struct {
	tb    testing.TB
	sock  *net.UDPConn
	k     *kcp.KCP
	in    wire.Splitter
	buf   []byte // datagrams read, and KCP's stream
	frame []byte // the request being sent
	hdr   wire.Header
	id    uint64
}

func dialBare(tb testing.TB, addr net.Addr) *bareSession {
	sock, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	require.NoError(tb, err)
	tb.Cleanup(func() { sock.Close() })
	s := &bareSession{tb: tb, sock: sock, buf: make([]byte, 64<<10), frame: make([]byte, 0, 2048)}
	s.k = kcp.NewKCP(0x5eed, func(b []byte, n int) {
		if _, err := sock.Write(b[:n]); err != nil {
			tb.Errorf("bare session: write: %v", err)
		}
	})
	s.k.NoDelay(1, 10, 2, 1)
	s.k.WndSize(128, 128)
	return s
}

// call sends one request (hello's value is its JSON) and returns its reply's header, reading
// the socket until it arrives; every datagram read is acknowledged at once.
func (s *bareSession) call(op task.Op, hello *wire.HelloRequest) *wire.Header {
	s.id++
	h := wire.Header{V: wire.Version, Op: op, ID: s.id}
	var err error
	if hello != nil {
		s.frame, err = wire.AppendHello(s.frame[:0], &h, *hello, wire.MinHello)
	} else {
		s.frame, err = wire.AppendFrame(s.frame[:0], &h, nil)
	}
	require.NoError(s.tb, err)
	s.k.Send(s.frame)
	dgram.Flush(s.k, kcp.IKCP_FLUSH_FULL)
	for {
		if body := s.next(); body != nil {
			_, err := wire.Decode(body, &s.hdr)
			require.NoError(s.tb, err)
			if s.hdr.ID == s.id {
				return &s.hdr
			}
			continue
		}
		require.NoError(s.tb, s.sock.SetReadDeadline(time.Now().Add(pctest.Timeout)))
		n, err := s.sock.Read(s.buf)
		require.NoError(s.tb, err, "no reply to %s %d", op, s.id)
		// ACK at once: the server's conversation falls idle and is compacted.
		s.k.Input(s.buf[:n], kcp.IKCP_PACKET_REGULAR, true)
		if n := s.k.Recv(s.buf); n > 0 {
			s.in.Write(s.buf[:n])
		}
	}
}

// next returns the next whole frame received, or nil.
func (s *bareSession) next() []byte {
	body, err := s.in.Next()
	require.NoError(s.tb, err)
	return body
}

// TestHeartbeatAllocatesNothing: once warmed up, the server's handling of a heartbeat allocates
// nothing of its own: the receive (the compacted conversation restored into a spare engine),
// Incoming's decode and task, SessionMgr's renewal and reply, Incoming's encoding, the flush and
// the compaction after the ACK, under every mapping. Heartbeats are the traffic of idle
// sessions: a million of them must not feed the garbage collector.
//
// kcp-go (v5.6.72 to v5.7.6) allocates inside itself, 4 times a heartbeat: a received data
// segment is boxed into an interface by container/heap on Push and Pop, and every segment it
// recycles ([]byte) is boxed by sync.Pool.Put; more when a segment is resent. Those are counted
// apart and logged, not asserted: how many segments KCP handles depends on timing. Allocations are attributed by stack with the heap profile at rate 1;
// the client is a bare KCP conversation on the test's goroutine (bareSession), left out. The
// pools' refills after the profile's own GCs are counted apart too: a constant, not per heartbeat.
func TestHeartbeatAllocatesNothing(t *testing.T) {
	if stages.RaceEnabled {
		t.Skip("the race detector allocates, and sync.Pool drops items at random under it")
	}
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			d := testdaemon.Start(t, daemon.Config{Threads: threads})
			s := dialBare(t, net.UDPAddrFromAddrPort(d.Addr()))
			rep := s.call(task.OpHello, &wire.HelloRequest{HeartbeatMs: 60_000})
			require.Equal(t, task.CodeOK, rep.Code, rep.Msg)
			for range 200 { // warm up: pools, spare engines, maps, the timing wheel's slots
				require.Equal(t, task.CodeOK, s.call(task.OpHeartbeat, nil).Code)
			}
			const beats = 1000
			before := serverAllocs(t)
			for range beats {
				if rep := s.call(task.OpHeartbeat, nil); rep.Code != task.CodeOK {
					t.Fatalf("heartbeat: %s %s", rep.Code, rep.Msg)
				}
			}
			after := serverAllocs(t)
			ours, kcpGo, refills := after.ours-before.ours, after.kcpGo-before.kcpGo, after.refills-before.refills
			t.Logf("in %d heartbeats the server allocated %d times in pipecache's code, %d in kcp-go's, %d refilling pools", beats, ours, kcpGo, refills)
			for stack, n := range after.where {
				if n > before.where[stack] {
					t.Logf("%d allocations at:\n%s", n-before.where[stack], stack)
				}
			}
			assert.Zero(t, ours, "the server's heartbeat path allocated")
			// The GCs that publish the profile empty every sync.Pool: the first heartbeats after
			// them refill the pools the path takes from (tasks, encoders, kcp-go's buffers), once.
			assert.Less(t, refills, int64(64), "pool refills grow with the heartbeats")
		})
	}
}

// allocCount is the server's allocations so far (heap profile, rate 1), by whose code made them.
type allocCount struct {
	ours, kcpGo int64
	refills     int64            // sync.Pool's New and its per-P arrays, ours or kcp-go's
	where       map[string]int64 // ours, by stack
}

// serverAllocs reads the heap profile (two GCs first: it is published at the end of a cycle)
// and counts the allocations made on the server's side: pipecache's code (stages, transport,
// loop, task...) and kcp-go's, leaving out the test's own stacks (the bare client's among them).
func serverAllocs(tb testing.TB) allocCount {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	c := allocCount{where: map[string]int64{}}
	for i := range recs {
		var stack strings.Builder
		test, kcpGo, ours, refill := false, false, false, false
		frames := runtime.CallersFrames(recs[i].Stack())
		for {
			f, more := frames.Next()
			fn := f.Function
			switch {
			case strings.Contains(fn, "_test.") || strings.HasPrefix(fn, "testing."):
				test = true
			case strings.HasPrefix(fn, "sync.(*Pool)."):
				refill = true
			case strings.HasPrefix(fn, "github.com/xtaci/kcp-go/"):
				kcpGo = true
			case strings.HasPrefix(fn, "github.com/pipecache/pipecache/"):
				ours = true
			}
			fmt.Fprintf(&stack, "\t%s\n", fn)
			if !more {
				break
			}
		}
		switch {
		case test:
		case refill && (kcpGo || ours):
			c.refills += recs[i].AllocObjects
		case kcpGo:
			c.kcpGo += recs[i].AllocObjects
		case ours:
			c.ours += recs[i].AllocObjects
			c.where[stack.String()] += recs[i].AllocObjects
		}
	}
	return c
}
