package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/task"
)

// closedBit marks the producer position of a closed queue; positions never reach it.
const closedBit = uint64(1) << 63

// cell is one slot of the ring, padded to a cache line so that a producer filling slot n+1 does
// not invalidate the line the consumer is reading slot n from (measured: about 20% of hand-off
// cost before padding).
type cell struct {
	seq atomic.Uint64 // Vyukov's sequence: pos when free for producer pos, pos+1 when filled
	t   *task.Task
	_   [48]byte
}

// cacheLinePad keeps producer and consumer fields on separate cache lines.
type cacheLinePad struct{ _ [64]byte }

// Queue is a bounded lock-free multi-producer, single-consumer queue of *task.Task with an
// eventfd that wakes its consumer's loop.
//
// Push and Close are safe for concurrent use by any number of goroutines. Everything else is
// the consumer's: one stage loop (see Loop.AddQueue) drains it.
//
// The ring is Dmitry Vyukov's bounded queue: each cell carries a sequence number, producers
// claim a position with one CAS and publish by storing the sequence, the consumer reads without
// atomics beyond that load. Closing sets a bit in the producer position in the same CAS that
// claims a cell for the poison pill, so every Push either lands before the pill or fails with
// ErrQueueClosed: none is lost behind it.
type Queue struct {
	name string
	mask uint64
	efd  int

	_     cacheLinePad
	tail  atomic.Uint64 // next producer position; closedBit once closed
	full  atomic.Uint64 // pushes rejected because the ring was full
	wakes atomic.Uint64 // eventfd writes

	_        cacheLinePad
	sleeping atomic.Int32 // 1 while the consumer has announced it is going to sleep

	_      cacheLinePad
	head   uint64        // next consumer position; consumer only
	popped atomic.Uint64 // tasks handed to the consumer, for Stats
	wait   Histogram     // time stamped tasks waited (Task.Queued); written by the consumer
	owner  atomic.Bool   // a loop has taken this queue

	cells []cell
}

// NewQueue returns a queue of the given capacity, a power of two. name appears in errors and
// stats.
func NewQueue(name string, capacity int) (*Queue, error) {
	if capacity < 2 || capacity&(capacity-1) != 0 {
		return nil, fmt.Errorf("%w: queue %s: %d", ErrBadQueueSize, name, capacity)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, os.NewSyscallError("eventfd", err))
	}
	q := &Queue{name: name, mask: uint64(capacity - 1), efd: efd, cells: make([]cell, capacity)}
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
	return q, nil
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Cap returns the queue's capacity.
func (q *Queue) Cap() int { return len(q.cells) }

// Push hands t to the consumer. It never blocks: a full ring returns ErrQueueFull and a closed
// queue ErrQueueClosed, and in both cases the caller still owns t and must deal with it
// (reply "busy", drop the datagram, retry later).
func (q *Queue) Push(t *task.Task) error {
	for {
		pos := q.tail.Load()
		if pos&closedBit != 0 {
			return ErrQueueClosed
		}
		c := &q.cells[pos&q.mask]
		seq := c.seq.Load()
		switch dif := int64(seq - pos); {
		case dif == 0:
			if q.tail.CompareAndSwap(pos, pos+1) {
				c.t = t
				c.seq.Store(pos + 1)
				q.wake()
				return nil
			}
		case dif < 0:
			q.full.Add(1)
			return ErrQueueFull
		}
		// Another producer claimed pos first: try the next one.
	}
}

// wake writes the eventfd if, and only if, the consumer announced it is going to sleep and no
// other producer has woken it since. Sequentially consistent atomics make this safe: the
// consumer stores sleeping=1 and then checks the ring; the producer publishes into the ring and
// then loads sleeping, so at least one of them sees the other.
func (q *Queue) wake() {
	if q.sleeping.Load() == 1 && q.sleeping.CompareAndSwap(1, 0) {
		q.signal()
	}
}

var eventfdOne = [8]byte{1} // little-endian uint64(1); read-only

func (q *Queue) signal() {
	q.wakes.Add(1)
	for {
		_, err := unix.Write(q.efd, eventfdOne[:])
		if err != unix.EINTR {
			// EAGAIN means the counter is saturated: the consumer is already signalled.
			return
		}
	}
}

// Close closes the queue for producers and appends a poison pill (an OpStop task) after the tasks
// already in it, so the consumer handles every task pushed before Close and then sees the pill.
// If the ring is full, Close waits for the consumer to make room, until ctx is done: a loop
// never waits, and closes a queue with Loop.CloseQueue instead. Closing a closed queue returns
// ErrQueueClosed.
func (q *Queue) Close(ctx context.Context) error {
	backoff := time.Microsecond
	for {
		err := q.TryClose()
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("loop: closing queue %s: full: %w", q.name, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// TryClose is Close without waiting: if the ring has no room for the poison pill it returns
// ErrQueueFull and the queue stays open.
func (q *Queue) TryClose() error {
	pill := task.Get()
	pill.Op = task.OpStop
	for {
		pos := q.tail.Load()
		if pos&closedBit != 0 {
			task.Put(pill)
			return ErrQueueClosed
		}
		c := &q.cells[pos&q.mask]
		switch dif := int64(c.seq.Load() - pos); {
		case dif == 0:
			if q.tail.CompareAndSwap(pos, (pos+1)|closedBit) {
				c.t = pill
				c.seq.Store(pos + 1)
				q.wake()
				return nil
			}
		case dif < 0:
			task.Put(pill)
			return ErrQueueFull
		default:
			runtime.Gosched() // another producer claimed pos and is publishing it
		}
	}
}

// Closed reports whether Close has been called.
func (q *Queue) Closed() bool { return q.tail.Load()&closedBit != 0 }

// pop returns the next task, or nil if the ring is empty (or its next cell is claimed but not
// yet published, in which case its producer will wake the consumer). Consumer only.
func (q *Queue) pop() *task.Task {
	c := &q.cells[q.head&q.mask]
	if c.seq.Load() != q.head+1 {
		return nil
	}
	t := c.t
	c.t = nil
	c.seq.Store(q.head + q.mask + 1)
	q.head++
	return t
}

// empty reports whether the consumer would find nothing. Consumer only.
func (q *Queue) empty() bool {
	return q.cells[q.head&q.mask].seq.Load() != q.head+1
}

// drainEventfd resets the eventfd counter after a wake-up. Consumer only.
func (q *Queue) drainEventfd() {
	var buf [8]byte
	for {
		_, err := unix.Read(q.efd, buf[:])
		if err != unix.EINTR {
			return
		}
	}
}

// QueueStats is a snapshot of a queue's counters.
type QueueStats struct {
	Name     string
	Len      int    // tasks waiting (approximate while producers are active)
	Cap      int    // capacity
	Pushed   uint64 // tasks accepted
	Rejected uint64 // pushes refused because the ring was full
	Wakeups  uint64 // eventfd writes (one per consumer wake-up, not per task)
	// Wait is how long tasks waited, from their producer's loop iteration (Task.Queued) to the
	// consumer's taking them, as both loops' cached clocks tell it: to within an iteration.
	// Only tasks their producer stamped count (those sent through an Outbox, and requests).
	Wait HistogramSnapshot
}

// Stats returns a snapshot of the queue's counters. Safe for concurrent use.
func (q *Queue) Stats() QueueStats {
	pushed := q.tail.Load() &^ closedBit
	popped := q.popped.Load()
	n := int(pushed - min(popped, pushed))
	return QueueStats{
		Name: q.name, Len: n, Cap: len(q.cells), Pushed: pushed,
		Rejected: q.full.Load(), Wakeups: q.wakes.Load(), Wait: q.wait.Snapshot(),
	}
}

// closeFD releases the eventfd once the queue's consumer has stopped.
func (q *Queue) closeFD() error {
	if err := unix.Close(q.efd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
