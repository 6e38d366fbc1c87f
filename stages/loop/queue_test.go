package loop

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

func TestNewQueueRejectsBadCapacity(t *testing.T) {
	for _, c := range []int{0, 1, 3, 100} {
		_, err := NewQueue("q", c)
		assert.ErrorIs(t, err, ErrBadQueueSize, "capacity %d", c)
	}
}

func TestQueueFullRejectsCleanly(t *testing.T) {
	q := newTestQueue(t, "q", 4)
	t.Cleanup(func() { q.closeFD() })
	tasks := make([]*task.Task, 5)
	for i := range tasks {
		tasks[i] = task.Get()
		tasks[i].ReqID = uint64(i)
	}
	for i := range 4 {
		require.NoError(t, q.Push(tasks[i]))
	}
	assert.ErrorIs(t, q.Push(tasks[4]), ErrQueueFull)
	assert.ErrorIs(t, q.Push(tasks[4]), ErrQueueFull)
	st := q.Stats()
	assert.Equal(t, uint64(2), st.Rejected)
	assert.Equal(t, 4, st.Len)

	// The ring neither grew nor lost anything: the four accepted tasks come out in order, and
	// the rejected one (still the caller's) fits once there is room.
	for i := range 4 {
		got := q.pop()
		require.NotNil(t, got)
		assert.Equal(t, uint64(i), got.ReqID)
	}
	assert.Nil(t, q.pop())
	require.NoError(t, q.Push(tasks[4]))
	assert.Equal(t, uint64(4), q.pop().ReqID)
}

func TestQueueClosedRejectsPushAndSecondClose(t *testing.T) {
	q := newTestQueue(t, "q", 8)
	t.Cleanup(func() { q.closeFD() })
	a := task.Get()
	require.NoError(t, q.Push(a))
	require.NoError(t, q.Close(pctest.Context(t)))
	assert.True(t, q.Closed())
	assert.ErrorIs(t, q.Push(task.Get()), ErrQueueClosed)
	assert.ErrorIs(t, q.Close(pctest.Context(t)), ErrQueueClosed)
	assert.Same(t, a, q.pop())
	assert.Equal(t, task.OpStop, q.pop().Op, "the poison pill follows the last task")
	assert.Nil(t, q.pop())
}

func TestQueueCloseWaitsForRoom(t *testing.T) {
	q := newTestQueue(t, "q", 2)
	t.Cleanup(func() { q.closeFD() })
	require.NoError(t, q.Push(task.Get()))
	require.NoError(t, q.Push(task.Get()))
	closed := make(chan error, 1)
	go func() { closed <- q.Close(pctest.Context(t)) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while the ring was full", err)
	case <-time.After(10 * time.Millisecond): // only a chance to misbehave; not a timing assertion
	}
	require.NotNil(t, q.pop())
	require.NoError(t, <-closed)
	require.NotNil(t, q.pop())
	assert.Equal(t, task.OpStop, q.pop().Op)
}

func TestQueueSteadyStateAllocatesNothing(t *testing.T) {
	q := newTestQueue(t, "q", 64)
	t.Cleanup(func() { q.closeFD() })
	allocs := testing.AllocsPerRun(10000, func() {
		tk := task.Get()
		tk.Key = append(tk.Key, "some-key"...)
		if err := q.Push(tk); err != nil {
			t.Fatal(err)
		}
		task.Put(q.pop())
	})
	assert.Zero(t, allocs)
}

// TestQueueManyProducersOneSleepingConsumer: every task arrives exactly once, and each
// producer's tasks arrive in the order it pushed them, while the consumer sleeps and wakes.
func TestQueueManyProducersOneSleepingConsumer(t *testing.T) {
	const producers = 8
	perProducer := 50_000
	if raceEnabled || testing.Short() {
		perProducer = 10_000
	}
	q := newTestQueue(t, "in", 256) // small, so producers also meet a full ring
	next := make([]uint64, producers)
	var got atomic.Int64
	var errs []string
	l := startLoop(t, Config{Name: "consumer"}, q, func(tk *task.Task) {
		p := tk.Session
		if tk.ReqID != next[p] && len(errs) < 10 {
			errs = append(errs, "producer order broken") // handler runs on one goroutine: no lock needed
		}
		next[p] = tk.ReqID + 1
		got.Add(1)
		task.Put(tk)
	})

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				tk := task.Get()
				tk.Session, tk.ReqID = uint64(p), uint64(i)
				pushRetry(t, q, tk)
			}
		})
	}
	wg.Wait()
	require.NoError(t, l.Barrier(pctest.Context(t)))
	assert.Empty(t, errs)
	assert.Equal(t, int64(producers*perProducer), got.Load(), "lost or duplicated tasks")
	for p := range producers {
		assert.Equal(t, uint64(perProducer), next[p], "producer %d", p)
	}
	st := l.Stats()
	t.Logf("%d tasks, %d iterations, %d sleeps, %d eventfd writes, %d full rejections",
		st.Tasks, st.Iterations, st.Sleeps, st.Queues[1].Wakeups, st.Queues[1].Rejected)
	assert.LessOrEqual(t, st.Queues[1].Wakeups, st.Sleeps+1, "more than one eventfd write per wake-up")
}

// TestQueueNoLostWakeup makes the consumer fall asleep and be woken hundreds of thousands of
// times, pushing right as it announces sleep, which is where a lost wake-up would hide. A lost
// one leaves the loop asleep for good (it has no timers) and the wait below fails.
func TestQueueNoLostWakeup(t *testing.T) {
	rounds := 300_000
	if raceEnabled || testing.Short() {
		rounds = 30_000
	}
	q := newTestQueue(t, "in", 16)
	var handled atomic.Int64
	l := startLoop(t, Config{Name: "sleeper"}, q, func(tk *task.Task) {
		handled.Add(1)
		task.Put(tk)
	})
	for i := range rounds {
		if i%2 == 0 {
			// Push just as the consumer announces sleep: the racy window.
			for q.sleeping.Load() == 0 {
			}
		}
		require.NoError(t, q.Push(task.Get()))
		pctest.WaitFor(t, func() bool { return handled.Load() == int64(i+1) }, "round %d: consumer never woke (lost wake-up)", i)
	}
	st := l.Stats()
	t.Logf("%d rounds: %d sleeps, %d eventfd writes", rounds, st.Sleeps, st.Queues[1].Wakeups)
	assert.GreaterOrEqual(t, st.Sleeps, uint64(rounds/2), "the consumer should have slept between most rounds")
	assert.LessOrEqual(t, st.Queues[1].Wakeups, uint64(rounds), "at most one eventfd write per task pushed")
}

// TestPushWaitWaitsOutAFullQueue: PushWait waits while the queue is full and pushes once the
// consumer makes room; when ctx ends first, or the queue is closed, it returns with the task
// still the caller's.
func TestPushWaitWaitsOutAFullQueue(t *testing.T) {
	q := newTestQueue(t, "q", 2)
	t.Cleanup(func() { q.closeFD() })
	require.NoError(t, q.Push(task.Get()))
	require.NoError(t, q.Push(task.Get()))

	mine := task.Get()
	mine.ReqID = 7
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, PushWait(ctx, q, mine), context.Canceled)
	assert.Equal(t, uint64(7), mine.ReqID, "not returned to the pool")

	pushed := make(chan error, 1)
	go func() { pushed <- PushWait(context.Background(), q, mine) }()
	task.Put(q.pop()) // room for one
	select {
	case err := <-pushed:
		require.NoError(t, err)
	case <-time.After(pctest.Timeout):
		t.Fatal("PushWait did not push once there was room")
	}
	task.Put(q.pop())
	assert.Same(t, mine, q.pop())

	require.NoError(t, q.Close(context.Background()))
	assert.ErrorIs(t, PushWait(context.Background(), q, mine), ErrQueueClosed)
}
