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

	finish   func() // Finish's callback, until it has run
	finishBy int64  // the loop clock's deadline for it
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
	defer o.finishIfEmpty()
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

// FinishTimeout bounds how long an Outbox's Finish waits for its destination to take what it
// holds; then what is left is dropped (and logged).
const FinishTimeout = time.Minute

// Finish runs fn once o holds nothing, nor the outbox it waits behind (everything pushed into o
// has reached its destination): at once if both are empty, else after the retry that empties
// them; until then the loop does not end. It never waits, so a stage that has finished can hand
// its last tasks to a stage of its own loop. If they cannot be delivered within FinishTimeout,
// they are dropped and fn runs. Loop goroutine only.
func (o *Outbox) Finish(fn func()) {
	if o.empty() {
		fn()
		return
	}
	if o.finish != nil {
		panic("loop: Outbox.Finish called twice")
	}
	o.finish, o.finishBy = fn, o.loop.clock.Nanos()+int64(FinishTimeout)
	o.loop.keepAlive++
	o.arm()
}

// empty reports whether o and every outbox it waits behind hold nothing.
func (o *Outbox) empty() bool {
	return len(o.held) == 0 && (o.after == nil || o.after.empty())
}

// finishIfEmpty runs Finish's callback once o is empty, or once its time is up.
func (o *Outbox) finishIfEmpty() {
	if o.finish == nil {
		return
	}
	if !o.empty() {
		if o.loop.clock.Nanos() < o.finishBy {
			o.arm()
			return
		}
		n := o.drop()
		o.loop.log.Error("outbox: destination did not take the last tasks in time: dropped", "tasks", n, "waited", FinishTimeout)
	}
	fn := o.finish
	o.finish = nil
	o.loop.keepAlive--
	fn()
}

// drop returns every task held by o and the outboxes it waits behind to the pool, and says how
// many there were.
func (o *Outbox) drop() int {
	n := len(o.held)
	for _, t := range o.held {
		task.Put(t)
	}
	clear(o.held)
	o.held = o.held[:0]
	if o.after != nil {
		n += o.after.drop()
	}
	return n
}

// CloseQueue closes q (Queue.Close: a poison pill after everything queued) without waiting: if
// its ring has no room, it tries again every OutboxRetry, and the loop does not end before it
// has succeeded (or FinishTimeout has passed). A stage closes the queue it feeds this way once
// it has finished, since that queue's consumer may be another stage of the same loop. Loop
// goroutine only.
func (l *Loop) CloseQueue(q *Queue) {
	if !errors.Is(q.TryClose(), ErrQueueFull) {
		return // closed now, or already
	}
	l.keepAlive++
	giveUp := l.clock.Nanos() + int64(FinishTimeout)
	retry := &timer.Timer{}
	retry.Fn = func() {
		if errors.Is(q.TryClose(), ErrQueueFull) {
			if l.clock.Nanos() < giveUp {
				l.After(retry, OutboxRetry)
				return
			}
			l.log.Error("could not close a full queue in time: its consumer is stuck", "queue", q.name, "waited", FinishTimeout)
		}
		l.keepAlive--
	}
	l.After(retry, OutboxRetry)
}
