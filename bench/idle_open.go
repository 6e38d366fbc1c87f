package bench

import (
	"context"
	"sync"
	"time"

	"github.com/pipecache/pipecache/client/kcpnet"
)

// retryDelay is how long a session whose conversation failed (an error reply, a bad reply,
// the conversation closed under it) waits before it opens again.
const retryDelay = time.Second

// openQueue is the order in which sessions open: sessions to open again first (those dropped
// by the server or the storm at once, failed ones after retryDelay), then those never opened.
// Safe for concurrent use.
type openQueue struct {
	mu    sync.Mutex
	next  int     // the next session never opened
	n     int     // sessions in all
	now   []int32 // to open again now, oldest first
	later []retry // to open again at their time, oldest (and so soonest) first
	wake  chan struct{}
}

type retry struct {
	idx int32
	at  int64 // run clock
}

func (q *openQueue) init(n int) {
	q.n = n
	q.wake = make(chan struct{}, 1)
}

// again queues session idx to open again: at once, or after retryDelay if later.
func (q *openQueue) again(idx int32, later bool, now int64) {
	q.mu.Lock()
	if later {
		q.later = append(q.later, retry{idx, now + int64(retryDelay)})
	} else {
		q.now = append(q.now, idx)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the next session to open, waiting for one; ok is false once ctx ends.
func (q *openQueue) take(ctx context.Context, clock func() int64) (idx int, ok bool) {
	for {
		idx, wait := q.poll(clock())
		if idx >= 0 {
			return idx, true
		}
		var t *time.Timer
		var timeout <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timeout = t.C
		}
		select {
		case <-ctx.Done():
			return -1, false
		case <-q.wake:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// poll returns the next session to open now, or -1 and how long until one is due (0: none is).
func (q *openQueue) poll(now int64) (int, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(q.later) && q.later[n].at <= now {
		q.now = append(q.now, q.later[n].idx)
		n++
	}
	q.later = q.later[n:]
	switch {
	case len(q.now) > 0:
		idx := q.now[0]
		q.now = q.now[1:]
		return int(idx), 0
	case q.next < q.n:
		q.next++
		return q.next - 1, 0
	case len(q.later) > 0:
		return -1, time.Duration(q.later[0].at - now)
	}
	return -1, 0
}

// opener opens sessions from the queue, each once it holds a hello slot and the rate allows,
// until ctx ends.
func (r *Idle) opener(ctx context.Context) {
	for {
		idx, ok := r.q.take(ctx, r.now)
		if !ok {
			return
		}
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if r.limiter.Wait(ctx) != nil {
			<-r.slots
			return
		}
		r.open(&r.sess[idx])
	}
}

// open dials a fresh conversation for s and sends its hello. The caller took a slot for it.
func (r *Idle) open(s *idleSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stClosed || r.stopping.Load() {
		<-r.slots
		return
	}
	c, err := r.eng.DialAddrPort(r.addr, kcpnet.DialOptions{Handler: r, Ctx: s, LocalAddr: r.sourceFor(s.idx)})
	if err != nil {
		<-r.slots
		r.c.lost.Add(1)
		if !r.stopping.Load() {
			r.q.again(s.idx, true, r.now())
		}
		return
	}
	if s.reqID > 0 {
		r.c.reopens.Add(1) // it had a conversation before
	}
	s.conn, s.slot = c, true
	r.sendHello(s, c, &r.openBuf)
}

// helloWait is a hello in flight, for its timeout.
type helloWait struct {
	s  *idleSession
	id uint64
	at int64
}

// waitHello notes a hello sent, so that sweepHellos gives it up if unanswered. Caller holds
// s.mu.
func (r *Idle) waitHello(s *idleSession, id uint64, at int64) {
	r.waitMu.Lock()
	r.waits = append(r.waits, helloWait{s, id, at})
	r.waitMu.Unlock()
}

// sweepHellos gives up the hellos unanswered for HelloTimeout: their sessions open again on
// fresh conversations after retryDelay (KCP has been resending them all along, and the server's
// pending lifetime is over; a server that slow is overloaded, and should not get them back at
// once).
func (r *Idle) sweepHellos(now int64) {
	deadline := now - int64(r.cfg.HelloTimeout)
	for {
		r.waitMu.Lock()
		if len(r.waits) == 0 || r.waits[0].at > deadline {
			r.waitMu.Unlock()
			return
		}
		w := r.waits[0]
		r.waits[0] = helloWait{}
		r.waits = r.waits[1:]
		r.waitMu.Unlock()
		w.s.mu.Lock()
		if w.s.state == stHello && w.s.helloID == w.id {
			r.c.helloTimeouts.Add(1)
			r.drop(w.s, true)
		}
		w.s.mu.Unlock()
	}
}

// abandonHellos closes the conversations whose hello is still in flight when the run ends.
func (r *Idle) abandonHellos() {
	r.waitMu.Lock()
	waits := r.waits
	r.waits = nil
	r.waitMu.Unlock()
	for _, w := range waits {
		w.s.mu.Lock()
		if w.s.state == stHello && w.s.helloID == w.id {
			r.drop(w.s, false)
		}
		w.s.mu.Unlock()
	}
}
