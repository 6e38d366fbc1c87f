package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// A Client's periodic and deferred work (the heartbeat, the reaper, acknowledgments, the near
// cache's unsubscribes) has no goroutine of its own while there is nothing to do: the heartbeat
// and the reaper are runtime timers (time.AfterFunc), which live in the Go runtime's per-P timer
// heaps and are fired by the scheduler, the process's shared timer; acknowledgments and
// unsubscribes are written by a goroutine started when there is one to write (kicker). Each
// firing runs in a goroutine of its own for as long as it needs (a heartbeat waits for its
// reply), as the per-beat goroutine did when the heartbeat was a loop. So an idle Client on
// Linux costs no goroutine at all (its session is a conversation of the shared kcpnet engine).

// startTimers arms the heartbeat and, with WithSilenceTimeout, the reaper. Dial calls it once
// the first session is open.
func (c *Client) startTimers() {
	c.beatT = time.AfterFunc(time.Hour, c.beatTick) // armed once the field is set: beatTick reads it
	c.beatT.Reset(time.Duration(c.beat.Load()))
	if c.opts.silenceTimeout > 0 {
		c.reapT = time.AfterFunc(time.Hour, c.reapTick)
		c.reapT.Reset(c.reapEvery())
	}
}

// stopTimers stops them (Close, after closing c.done). A firing already under way finds c.done
// closed, or re-arms its timer once more and then finds it.
func (c *Client) stopTimers() {
	if c.beatT != nil {
		c.beatT.Stop()
	}
	if c.reapT != nil {
		c.reapT.Stop()
	}
}

func (c *Client) isClosing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// beatTick sends a heartbeat every negotiated interval; a server silent for deadAfter fails the
// session (and the client redials). A server that has expired the session answers
// "unauthorized": the client then says hello again.
func (c *Client) beatTick() {
	if c.isClosing() {
		return
	}
	next := time.Duration(c.beat.Load())
	s := c.current()
	if s != nil && c.near != nil {
		// Heartbeat replies are what lets the near cache serve: beat often enough that entries
		// stay usable while the session is healthy.
		next = min(next, c.near.maxStale/3)
	}
	c.beatT.Reset(next) // before the beat, which may wait for its reply
	if s == nil {
		return
	}
	if silent := time.Since(c.heard()); silent > c.opts.deadAfter {
		c.sessionFailed(s, fmt.Errorf("server silent for %v", silent.Round(time.Millisecond)))
		return
	}
	c.beatOnce(s)
}

func (c *Client) beatOnce(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.deadAfter)
	defer cancel()
	c.subMu.Lock()
	seq := c.lastSeq // the heartbeat acknowledges the pushes processed so far
	if seq > c.ackSent {
		c.ackSent, c.unacked = seq, 0
	}
	c.subMu.Unlock()
	_, err := c.doOn(ctx, s, &wire.Header{Op: task.OpHeartbeat, Seq: seq}, nil)
	switch {
	case errors.Is(err, ErrUnknownOp):
		c.doOn(ctx, s, &wire.Header{Op: task.OpPing}, nil) // a server without sessions
	case errors.Is(err, ErrUnauthorized) && c.closing.Load():
		// Close's goodbye got there first: the session is over, as asked.
	case errors.Is(err, ErrUnauthorized):
		// The server does not know this conversation's session: resume it (hello falls back to
		// a new session if it has expired).
		c.log.Warn("session not known on this conversation; saying hello again", "addr", c.addr)
		if err := c.hello(ctx, s); err != nil {
			c.sessionFailed(s, err)
		}
	}
}

// silence is how long the server may be silent before calls in flight fail: the silence
// timeout, or twice the negotiated heartbeat interval if the server imposed a longer one.
func (c *Client) silence() time.Duration {
	return max(c.opts.silenceTimeout, 2*time.Duration(c.beat.Load()))
}

// reapEvery is the reaper's period: eight checks per silence timeout.
func (c *Client) reapEvery() time.Duration { return max(c.opts.silenceTimeout/8, time.Millisecond) }

// reapTick fails the calls in flight whenever the server has been silent for silence().
func (c *Client) reapTick() {
	if c.isClosing() {
		return
	}
	c.reapT.Reset(c.reapEvery())
	if time.Since(c.heard()) < c.silence() {
		return // the server spoke recently: alive
	}
	var expired []*call
	c.mu.Lock()
	for id, cl := range c.pending { // every call: a silent server answers none of them
		delete(c.pending, id)
		expired = append(expired, cl)
	}
	c.mu.Unlock()
	for _, cl := range expired {
		cl.timedOut = true
		close(cl.reply)
	}
}

// heard returns when the server last sent stream data (a frame, or part of one) on the newest
// session, or when that session was opened if it has sent none since: the silence that
// heartbeat and reaper measure. Datagrams of ACKs alone do not count: a node whose pipeline is
// stuck may still acknowledge.
func (c *Client) heard() time.Time {
	t := time.Unix(0, c.lastRecv.Load())
	if s := c.latest.Load(); s != nil {
		if d := s.link.lastData(); d.After(t) {
			t = d
		}
	}
	return t
}

// kicker runs fn in a goroutine of its own when kicked, one run at a time: a kick while fn runs
// makes it run once more after. Between kicks no goroutine exists. fn is set before the first
// kick.
type kicker struct {
	fn      func()
	pending atomic.Bool // kicked since fn last started
	running atomic.Bool // a goroutine runs fn, or is about to
}

// kick makes fn run soon, in a new goroutine unless one is running. It never blocks.
func (k *kicker) kick() {
	k.pending.Store(true)
	if k.running.CompareAndSwap(false, true) {
		go k.run()
	}
}

// kickHere is kick, running fn in the calling goroutine if none is running (a timer's).
func (k *kicker) kickHere() {
	k.pending.Store(true)
	if k.running.CompareAndSwap(false, true) {
		k.run()
	}
}

func (k *kicker) run() {
	for {
		for k.pending.Swap(false) {
			k.fn()
		}
		k.running.Store(false)
		// A kick between the last Swap and the Store above found running set and started
		// nothing: take it, unless a new goroutine already has.
		if !k.pending.Load() || !k.running.CompareAndSwap(false, true) {
			return
		}
	}
}
