package loop

import (
	"errors"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

// OutboxRetry is how soon an Outbox tries again after its destination was full.
const OutboxRetry = time.Millisecond

// An Outbox is a stage's way to a destination that may be full (a Queue, or a channel to worker
// goroutines): tasks that do not fit wait in it, in order, and are retried on a timer of the
// stage's loop, never by spinning. A stage uses an Outbox where a task must not be lost (a reply,
// a change event, a write for the store); where losing one is harmless it pushes directly and
// counts what it drops (a push that the client can ask to have replayed). Which it is, is stated
// where each destination is connected.
//
// Every task pushed is stamped with the loop's cached clock (Task.Queued), so that the Queue's
// consumer measures how long it waited (QueueStats.Wait); a destination that is not a Queue
// clears the stamp.
//
// An Outbox belongs to its loop's goroutine.
type Outbox struct {
	loop  *Loop
	push  func(*task.Task) error
	after *Outbox // tasks wait while it holds any: what goes there must arrive first
	held  []*task.Task
	retry timer.Timer
	stuck uint64 // tasks that found the destination full (for Stats)
}

// NewOutbox returns an outbox of l for the destination push (typically a Queue's Push). If
// after is not nil, nothing leaves this outbox while after holds tasks.
func NewOutbox(l *Loop, push func(*task.Task) error, after *Outbox) *Outbox {
	o := &Outbox{loop: l, push: push, after: after}
	o.retry.Fn = o.flush
	return o
}

// Push hands t to the destination, or keeps it until the destination has room, behind what is
// already waiting. A destination that is closed (stopping) drops t.
func (o *Outbox) Push(t *task.Task) {
	t.Queued = o.loop.clock.Nanos() // the wait counts from here, time held in the outbox included
	if len(o.held) == 0 && (o.after == nil || o.after.Len() == 0) {
		err := o.push(t)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrQueueFull) {
			task.Put(t)
			return
		}
	}
	o.stuck++
	o.held = append(o.held, t)
	o.arm()
}

// Len returns how many tasks wait.
func (o *Outbox) Len() int { return len(o.held) }

// Stuck returns how many tasks have had to wait, ever.
func (o *Outbox) Stuck() uint64 { return o.stuck }

func (o *Outbox) arm() {
	if !o.retry.Scheduled() {
		o.loop.After(&o.retry, OutboxRetry)
	}
}

// flush pushes what waits, in order, until the destination is full again.
func (o *Outbox) flush() {
	if o.after != nil && o.after.Len() > 0 {
		o.arm()
		return
	}
	for i, t := range o.held {
		err := o.push(t)
		if errors.Is(err, ErrQueueFull) {
			n := copy(o.held, o.held[i:])
			clear(o.held[n:])
			o.held = o.held[:n]
			o.arm()
			return
		}
		if err != nil {
			task.Put(t)
		}
	}
	clear(o.held)
	o.held = o.held[:0]
}

// Drain pushes everything waiting, sleeping between tries: only for a loop that is finishing,
// when waiting is allowed. It gives up at the deadline and drops what is left.
func (o *Outbox) Drain(deadline time.Time) {
	for o.Len() > 0 && time.Now().Before(deadline) {
		if o.after != nil {
			o.after.Drain(deadline)
		}
		o.flush()
		if o.Len() > 0 {
			time.Sleep(OutboxRetry)
		}
	}
	for _, t := range o.held {
		task.Put(t)
	}
	o.held = o.held[:0]
}
