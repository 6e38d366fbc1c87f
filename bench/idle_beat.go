package bench

import (
	"context"
	"time"

	"github.com/pipecache/pipecache/task"
)

// beatTick is the heartbeat scheduler's resolution: each tick beats the sessions whose phase
// falls in it.
const beatTick = 10 * time.Millisecond

// beater sends the heartbeats, and gives up hellos that timed out, until ctx ends. Session i
// beats at phase i/n of the negotiated interval, so that n sessions' heartbeats are spread
// evenly over it, however they were opened.
func (r *Idle) beater(ctx context.Context) {
	t := time.NewTicker(beatTick)
	defer t.Stop()
	done := int64(-1) // the last tick handled, in ticks since the run began
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.now()
		r.sweepHellos(now)
		cycle := r.cycle.Load()
		if cycle == 0 {
			continue // no hello answered yet: nobody to beat
		}
		slots := max(1, cycle/int64(beatTick))
		cur := now / int64(beatTick)
		if done < 0 || cur-done > slots {
			done = cur - 1 // the first tick, or after a stall: at most one cycle's worth
		}
		for k := done + 1; k <= cur; k++ {
			lo, hi := beatRange(k%slots, slots, int64(len(r.sess)))
			for i := lo; i < hi; i++ {
				r.beat(&r.sess[i], now)
			}
		}
		r.eng.Flush() // the tick's heartbeats leave together: a sendmmsg per socket
		done = cur
	}
}

// beatRange returns the sessions [lo, hi) that beat in slot k of slots, of n: over the slots of
// one cycle, every session exactly once, as evenly as integers allow.
func beatRange(k, slots, n int64) (lo, hi int64) { return k * n / slots, (k + 1) * n / slots }

// beat queues s's heartbeat (the caller flushes), if it is live, or gives its conversation up
// if the last cfg.MaxMissed went unanswered.
func (r *Idle) beat(s *idleSession, now int64) {
	s.mu.Lock()
	if s.state != stLive {
		s.mu.Unlock()
		return
	}
	if s.beatID != 0 {
		if s.missed++; int(s.missed) >= r.cfg.MaxMissed {
			r.c.silent.Add(1)
			r.drop(s, false)
			s.mu.Unlock()
			return
		}
	}
	s.reqID++
	s.beatID, s.at = s.reqID, now
	c, id := s.conn, s.reqID
	s.mu.Unlock()
	r.beatBuf = appendRequest(r.beatBuf[:0], task.OpHeartbeat, id)
	r.c.beats.Add(1)
	r.queue(c, r.beatBuf)
}
