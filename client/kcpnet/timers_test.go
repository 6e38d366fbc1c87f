//go:build linux

package kcpnet

import (
	"encoding/binary"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

// TestIdleConversationsCostNothing: once everything is acknowledged and no ACK is held, no
// conversation has a timer and the loop sleeps without a timeout.
func TestIdleConversationsCostNothing(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	ctx := pctest.Context(t)
	for range 20 {
		r, _ := dialRPC(t, e, in.Addr(), DialOptions{})
		for range 3 {
			_, err := r.call(ctx, task.OpPing, nil)
			require.NoError(t, err)
		}
	}
	// Idle: no timer, and the loop sleeps without a timeout, so that a barrier is then the one
	// thing that wakes it. (A datagram still on its way, say a slow server's retransmission,
	// wakes it too and may set a timer for a while: the test waits for a quiet moment, which
	// an engine that kept a timer of its own would never have.)
	pctest.WaitFor(t, func() bool {
		if e.sleepUntil.Load() != math.MaxInt64 {
			return false
		}
		wakes := e.Stats().LoopWakes
		timers := -1
		e.onLoop(func() { timers = e.lp.wheel.Len() }) // one wake-up: this barrier
		return timers == 0 && e.Stats().LoopWakes == wakes+1
	}, "the engine never went quiet: a timer or a wake-up of its own stayed")
}

// blackHole is a UDP socket that reads what it is sent and never answers: it counts the
// transmissions of each KCP push sequence number.
type blackHole struct {
	conn *net.UDPConn
	mu   sync.Mutex
	sent map[uint32]int
}

func newBlackHole(tb testing.TB) *blackHole {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	h := &blackHole{conn: conn, sent: map[uint32]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for d := buf[:n]; len(d) >= kcp.IKCP_OVERHEAD; {
				l := int(binary.LittleEndian.Uint32(d[20:]))
				if d[4] == kcp.IKCP_CMD_PUSH {
					h.mu.Lock()
					h.sent[binary.LittleEndian.Uint32(d[12:])]++
					h.mu.Unlock()
				}
				if kcp.IKCP_OVERHEAD+l > len(d) {
					break
				}
				d = d[kcp.IKCP_OVERHEAD+l:]
			}
		}
	})
	tb.Cleanup(func() { conn.Close(); wg.Wait() })
	return h
}

func (h *blackHole) transmissions(sn uint32) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent[sn]
}

// TestRetransmissionChecksNeverBackOff: while a segment is unacknowledged and the peer silent,
// the conversation's timer always stays within one Interval (the server's backed-off check is
// the bug of issue 13), and KCP goes on resending at its RTO.
func TestRetransmissionChecksNeverBackOff(t *testing.T) {
	hole := newBlackHole(t)
	e := newTestEngine(t, Config{})
	_, c := dialRPC(t, e, hole.conn.LocalAddr().(*net.UDPAddr).AddrPort(), DialOptions{})
	require.NoError(t, c.Send([]byte("a frame nobody acknowledges")))
	interval := int64(e.cfg.Interval) + int64(time.Millisecond) // a wheel tick of rounding
	for k := 1; k <= 8; k++ {                                   // check after each transmission the peer sees
		pctest.WaitFor(t, func() bool { return hole.transmissions(0) >= k }, "transmission %d never reached the peer", k)
		var scheduled bool
		var ahead int64
		e.onLoop(func() { scheduled, ahead = c.timer.Scheduled(), c.due-now() })
		require.True(t, scheduled, "after transmission %d: no retransmission timer with data unacknowledged", k)
		require.LessOrEqual(t, ahead, interval, "after transmission %d: the check is %v away", k, time.Duration(ahead))
	}
}

// TestACKsRideOnRequests: at one request in flight each round trip costs the client one
// datagram: the ACK of each reply leaves in front of the next request. With AckDelay
// negative, each ACK leaves alone, as kcp-go's UDPSession sends it.
func TestACKsRideOnRequests(t *testing.T) {
	in := startBare(t, bareConfig())
	const n = 100
	for _, tc := range []struct {
		name     string
		delay    time.Duration
		min, max uint64 // datagrams out for n round trips
	}{
		// A long delay, so that a slow machine between two requests does not send an ACK alone.
		{"held", time.Minute, n, n + 1},
		{"at once", -1, 2*n - 1, 2*n + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, Config{AckDelay: tc.delay})
			r, _ := dialRPC(t, e, in.Addr(), DialOptions{})
			ctx := pctest.Context(t)
			retrans := kcp.DefaultSnmp.Copy().RetransSegs
			for range n {
				_, err := r.call(ctx, task.OpPing, nil)
				require.NoError(t, err)
			}
			st := e.Stats()
			// A slow machine's reply may come after the RTO: each retransmission, of a request
			// or of a reply (then ACKed again), adds one datagram at most. kcp-go counts both
			// sides' (and any other test's) in one global.
			extra := kcp.DefaultSnmp.Copy().RetransSegs - retrans
			assert.GreaterOrEqual(t, st.DatagramsOut, tc.min)
			assert.LessOrEqual(t, st.DatagramsOut, tc.max+extra, "%d retransmissions", extra)
			if tc.delay > 0 {
				// (An ACK still in KCP's list when the next request is flushed rides along without
				// having been held: not every ride is counted in AcksPiggybacked.)
				assert.NotZero(t, st.AcksPiggybacked)
				assert.Zero(t, st.AcksAlone)
			} else {
				assert.Zero(t, st.AcksHeld)
			}
		})
	}
}

// TestManyConversationsOneSocket: hundreds of conversations share the engine's one socket,
// concurrently, each matched to its own replies.
func TestManyConversationsOneSocket(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	ctx := pctest.Context(t)
	const convs = 300
	var wg sync.WaitGroup
	for i := range convs {
		r, _ := dialRPC(t, e, in.Addr(), DialOptions{})
		wg.Go(func() {
			for j := range 5 {
				want := binary.BigEndian.AppendUint64(nil, uint64(i<<8|j))
				rep, err := r.call(ctx, task.OpEcho, want)
				if !assert.NoError(t, err) || !assert.Equal(t, want, rep.value) {
					return
				}
			}
		})
	}
	wg.Wait()
	st := e.Stats()
	assert.Equal(t, 1, st.Sockets)
	assert.Equal(t, convs, st.Conns)
	assert.Equal(t, int(in.Stats().Transport.Conns), convs, "the server saw each as its own conversation")
}
