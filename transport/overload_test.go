package transport

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/transport/wire"
)

// openLive opens conversation conv from from, establishes it as a hello would, and leaves a
// frame in flight that the (silent) peer never acknowledges.
func openLive(t *testing.T, s *Server, l *testLoop, from netip.AddrPort, conv uint32) *Conn {
	t.Helper()
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, nil)
	for _, d := range clientSegments(conv, frame) {
		s.input(d, len(d), from)
	}
	c := s.conns[convKey{addr: from, conv: conv}]
	require.NotNil(t, c)
	c.Establish()
	c.SetLive(true)
	require.NoError(t, c.Send(frame))
	l.ready.Run()
	require.True(t, c.retransmit.Scheduled(), "unacknowledged data is checked for resends")
	return c
}

// waitFor polls cond, refreshing the loop's clock, until it holds (a generous bound: the
// machine may be slow, and KCP resends on its own wall clock).
func waitFor(t *testing.T, l *testLoop, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
		l.clock.Refresh()
	}
}

// TestUnansweredResendsBackOff (issue #26): a conversation whose peer answers none of its
// resends checks, and so resends, ever less often, up to maxBackoff, instead of at KCP's pace
// for as long as its session lives (what made the server, and the load tool, collapse at
// 50,000 sessions). The first unanswered resend keeps the pace (a single lost reply costs what
// it did, issue #13); a datagram from the peer restores the pace at once.
func TestUnansweredResendsBackOff(t *testing.T) {
	s, l, _ := newTestServer(t, Config{})
	from := netip.MustParseAddrPort("127.0.0.1:9")
	c := openLive(t, s, l, from, 5)
	c.lastSeen = l.clock.Nanos() - int64(time.Minute) // silent since well before the send

	var ticks []time.Duration // the period after each check that resent
	waitFor(t, l, "three resends went unanswered", func() bool {
		before := s.Stats().Resends
		tick := c.update(l.clock.Nanos())
		if s.Stats().Resends > before {
			ticks = append(ticks, tick)
		}
		return len(ticks) >= 3
	})
	assert.Equal(t, c.aliveTick(), ticks[0], "the first resend keeps KCP's pace")
	assert.Equal(t, min(2*c.aliveTick(), maxBackoff), ticks[1], "the second unanswered resend doubles the period")
	assert.Equal(t, min(4*c.aliveTick(), maxBackoff), ticks[2])
	assert.NotZero(t, s.Stats().Backoffs)

	c.unanswered = 40 // however long the peer has been silent: never more than maxBackoff
	c.resentAt = l.clock.Nanos()
	assert.Equal(t, maxBackoff, c.update(l.clock.Nanos()))

	c.heard(l.clock.Nanos()) // the peer speaks again
	assert.Equal(t, 0, c.unanswered)
	assert.Equal(t, c.aliveTick(), c.tick)
	assert.Equal(t, c.aliveTick(), c.update(l.clock.Nanos()), "a peer that answers gets checks at its pace")
	assert.True(t, c.retransmit.Scheduled())
}

// TestRetransmitBudgetDefersChecksAndNewConversations (issue #26): one loop iteration runs at
// most RetransmitBudget retransmission checks; the rest are put off (counted), the server then
// counts as behind and drops datagrams that would begin a conversation (counted: the client's
// KCP resends its hello) until behindHold has passed, while established conversations go on.
// The budget is whole again in the next iteration.
func TestRetransmitBudgetDefersChecksAndNewConversations(t *testing.T) {
	s, l, rec := newTestServer(t, Config{RetransmitBudget: 2})
	from := netip.MustParseAddrPort("127.0.0.1:9")
	var conns []*Conn
	for conv := uint32(1); conv <= 5; conv++ {
		conns = append(conns, openLive(t, s, l, from, conv))
	}
	require.False(t, s.Behind())
	for _, c := range conns { // all five fall due in the same iteration
		c.onRetransmit()
	}
	assert.Equal(t, uint64(3), s.Stats().ChecksDeferred, "two checks fit in the budget")
	for _, c := range conns {
		assert.True(t, c.retransmit.Scheduled(), "a check put off is still to come")
	}
	assert.True(t, s.Behind())
	assert.Equal(t, uint64(1), s.Stats().BehindSpells)

	// Behind: a new conversation is dropped, an established one is served.
	frame, _ := wire.AppendFrame(nil, &wire.Header{V: 1}, []byte("x"))
	for _, d := range clientSegments(99, frame) {
		s.input(d, len(d), from)
	}
	assert.Equal(t, uint64(1), s.Stats().ShedNew)
	assert.Nil(t, s.conns[convKey{addr: from, conv: 99}])
	frames := len(rec.frames)
	for _, d := range clientSegments(1, frame)[:1] {
		d[12] = 1 // sn 1: the next segment of conversation 1
		s.input(d, len(d), from)
	}
	assert.Len(t, rec.frames, frames+1, "established conversations are served while behind")

	l.ready.Run() // the iteration ends: the budget is whole again
	for _, c := range conns[:2] {
		c.onRetransmit()
	}
	assert.Equal(t, uint64(3), s.Stats().ChecksDeferred)

	waitFor(t, l, "the server no longer counts as behind", func() bool { return !s.Behind() })
	for _, d := range clientSegments(99, frame) {
		s.input(d, len(d), from)
	}
	assert.NotNil(t, s.conns[convKey{addr: from, conv: 99}], "new conversations are admitted again")
	assert.Equal(t, uint64(1), s.Stats().ShedNew)
}

// TestBacklogMeansBehind: a wake-up that finds more than backlogBatches full batches waiting
// on the socket means the server is behind the network: new conversations wait.
func TestBacklogMeansBehind(t *testing.T) {
	s, _, _ := newTestServer(t, Config{Batch: 8})
	s.noteBacklog(backlogBatches * 8)
	assert.False(t, s.Behind(), "a full wake-up is not yet a backlog")
	s.noteBacklog(backlogBatches*8 + 1)
	assert.True(t, s.Behind())
}
