package transport

import (
	"time"

	"github.com/pipecache/pipecache/transport/dgram"
)

// Overload (issue #26): a server that falls behind must shed work where it is cheapest, in a
// way that lets it catch up, instead of feeding its own collapse. The collapse measured before
// this (50,000 sessions at 5 s heartbeats, BENCHMARKS.md) went so: the load tool fell behind,
// its ACKs came late, every conversation with a reply in flight resent it at KCP's pace, which
// put the peer (and the server: two thirds of its profile in KCP.Update and the sendmmsg of
// resends) further behind, until every session went silent. Three rules, all on the loop
// goroutine:
//
//   - Never resend faster than the peer acknowledges. A conversation whose resends go
//     unanswered (nothing heard from the peer since the last one) spaces its retransmission
//     checks out, doubling from the second unanswered resend up to maxBackoff. The first
//     resend keeps KCP's pace, so one lost reply costs a client what it did (issue #13); any
//     datagram from the peer restores the pace at once (input).
//   - A retransmission budget per loop iteration: at most RetransmitBudget checks run in one;
//     the others are put off by their own period (counted), so datagrams, which carry the
//     ACKs that end resends, are read between them.
//   - New conversations are the cheapest work to refuse: while the server is behind (a check
//     was put off, or a wake-up found a backlog of datagrams on the socket, within the last
//     behindHold), a datagram that would begin a conversation is dropped (counted). The
//     client's KCP resends its hello at its growing RTO, so this defers the hello rather than
//     refusing it: it gets in once the server has caught up.
//

const (
	// maxBackoff bounds the retransmission check period of a conversation whose resends go
	// unanswered: a vanished peer costs one check per maxBackoff until its session's lease or
	// the idle timeout ends it.
	maxBackoff = 8 * time.Second
	// behindHold is how long the server counts as behind after the last sign of it.
	behindHold = time.Second
	// backlogBatches: a wake-up that reads more than this many full batches found a backlog.
	backlogBatches = 16
)

// overload is the Server's bookkeeping of shedding. Loop goroutine only.
type overload struct {
	checks      int   // retransmission checks run in this loop iteration
	behindUntil int64 // the server counts as behind until then (loop clock)
	checking    *Conn // the conversation whose KCP Update runs now
}

// Behind reports whether the server is shedding new conversations now. Loop goroutine only.
func (s *Server) Behind() bool { return s.behind(s.loop.Clock().Nanos()) }

func (s *Server) behind(now int64) bool { return now < s.ovl.behindUntil }

// markBehind notes a sign that the server is behind.
func (s *Server) markBehind(now int64) {
	if !s.behind(now) {
		s.stats.behindSpells.Add(1)
	}
	s.ovl.behindUntil = now + int64(behindHold)
}

// shedNew reports whether a new conversation is to be refused because the server is behind,
// and counts it.
func (s *Server) shedNew(now int64) bool {
	if !s.behind(now) {
		return false
	}
	s.stats.shedNew.Add(1)
	return true
}

// noteBacklog is told how many datagrams one wake-up read.
func (s *Server) noteBacklog(read int) {
	if read > backlogBatches*s.cfg.Batch {
		s.markBehind(s.loop.Clock().Nanos())
	}
}

// takeCheck reports whether a retransmission check may run in this iteration, and counts it.
// flush, which ends every iteration that ran one, gives the budget back.
func (s *Server) takeCheck(now int64) bool {
	if s.ovl.checks >= s.cfg.RetransmitBudget {
		s.stats.checksDeferred.Add(1)
		s.markBehind(now)
		return false
	}
	s.ovl.checks++
	return true
}

// noteOutput is told of every datagram c's KCP outputs: data sent by a retransmission check is
// a resend.
func (c *Conn) noteOutput(data []byte) {
	if c.srv.ovl.checking == c && !dgram.OnlyACKs(data) {
		c.resent = true
	}
}

// update runs c's KCP retransmission check, and returns the period of the next one.
func (c *Conn) update(now int64) time.Duration {
	s := c.srv
	if c.lastSeen >= c.resentAt {
		c.unanswered = 0 // the peer spoke since the last resend
	}
	c.resent = false
	s.ovl.checking = c
	c.kcp.Update()
	s.ovl.checking = nil
	if c.resent {
		c.resentAt = now
		c.unanswered = min(c.unanswered+1, 30)
		s.stats.resends.Add(1)
	}
	tick := c.tick
	switch {
	case c.live:
		tick = c.aliveTick()
	case now-c.lastSeen > int64(c.tick):
		tick = min(2*c.tick, maxTick)
	}
	if c.unanswered > 1 {
		s.stats.backoffs.Add(1)
		tick = min(tick<<(c.unanswered-1), maxBackoff)
	}
	return tick
}

// heard is called when a datagram arrives from c's peer: checks go back to the pace of a peer
// that answers, and one put far off by the back-off is brought back.
func (c *Conn) heard(now int64) {
	c.lastSeen = now
	c.tick = c.aliveTick()
	if c.unanswered > 1 && c.retransmit.Scheduled() {
		c.srv.loop.Wheel().Schedule(&c.retransmit, now+int64(c.tick))
	}
	c.unanswered = 0
}
