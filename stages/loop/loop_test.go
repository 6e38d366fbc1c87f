package loop

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

func TestLoopBadUseFailsLoudly(t *testing.T) {
	l, err := New(Config{Name: "bad"})
	require.NoError(t, err)

	t.Run("closed fd", func(t *testing.T) {
		r, w, err := os.Pipe()
		require.NoError(t, err)
		fd := int(r.Fd())
		r.Close()
		w.Close()
		err = l.AddFD(fd, unix.EPOLLIN, func(uint32) {})
		assert.ErrorIs(t, err, unix.EBADF)
		assert.ErrorContains(t, err, "epoll_ctl")
	})
	st := host(t, l, "bad")
	t.Run("queue with two consumers", func(t *testing.T) {
		q := newTestQueue(t, "shared", 8)
		require.NoError(t, st.AddQueue(q, func(*task.Task) {}))
		other, err := New(Config{Name: "other"})
		require.NoError(t, err)
		t.Cleanup(func() { other.Stop(context.Background()) })
		assert.ErrorIs(t, host(t, other, "other").AddQueue(q, func(*task.Task) {}), ErrQueueInUse)
		assert.ErrorIs(t, st.AddQueue(q, func(*task.Task) {}), ErrQueueInUse, "nor twice by one stage")
	})
	t.Run("start twice", func(t *testing.T) {
		require.NoError(t, st.Start())
		assert.ErrorIs(t, st.Start(), ErrLoopStarted)
		assert.ErrorIs(t, l.Start(), ErrLoopStarted)
		assert.ErrorIs(t, st.AddQueue(newTestQueue(t, "late", 8), func(*task.Task) {}), ErrLoopStarted)
		_, err := l.Host(StageConfig{Name: "late"})
		assert.ErrorIs(t, err, ErrLoopStarted)
	})
	t.Run("stop twice", func(t *testing.T) {
		require.NoError(t, l.Stop(pctest.Context(t)))
		assert.ErrorIs(t, l.Stop(pctest.Context(t)), ErrLoopStopped)
		assert.ErrorIs(t, l.Start(), ErrLoopStopped)
		assert.ErrorIs(t, l.Barrier(pctest.Context(t)), ErrLoopStopped)
	})
	t.Run("push to a stopped loop's queue", func(t *testing.T) {
		assert.ErrorIs(t, l.queues[1].q.Push(task.Get()), ErrQueueClosed)
	})
}

func TestLoopNeverStartedStops(t *testing.T) {
	l, err := New(Config{Name: "idle"})
	require.NoError(t, err)
	require.NoError(t, l.Stop(pctest.Context(t)))
	assert.ErrorIs(t, l.Stop(pctest.Context(t)), ErrLoopStopped)
}

func TestLoopAffinity(t *testing.T) {
	l := startLoop(t, Config{Name: "pinned", CPUs: []int{0}}, nil, nil)
	require.NoError(t, l.Barrier(pctest.Context(t)))

	bad, err := New(Config{Name: "nowhere", CPUs: []int{1023}})
	require.NoError(t, err)
	assert.ErrorContains(t, bad.Start(), "sched_setaffinity")
	<-bad.Done()
}

// TestLoopStopsCleanlyWithWorkInFlight: Stop with thousands of tasks still queued handles every
// one of them, then refuses new ones.
func TestLoopStopsCleanlyWithWorkInFlight(t *testing.T) {
	q := newTestQueue(t, "in", 1<<14)
	var handled atomic.Int64
	release := make(chan struct{})
	l := startLoop(t, Config{Name: "busy"}, q, func(tk *task.Task) {
		if tk.ReqID == 0 {
			<-release // hold the loop so the rest pile up behind the first task
		}
		handled.Add(1)
		task.Put(tk)
	})
	const n = 10_000
	for i := range n {
		tk := task.Get()
		tk.ReqID = uint64(i)
		require.NoError(t, q.Push(tk))
	}
	stopped := make(chan error, 1)
	go func() { stopped <- l.Stop(pctest.Context(t)) }()
	pctest.WaitFor(t, q.Closed, "Stop did not close the queue")
	close(release)
	require.NoError(t, <-stopped)
	assert.Equal(t, int64(n), handled.Load())
	assert.ErrorIs(t, q.Push(task.Get()), ErrQueueClosed)
	assert.NoError(t, l.Err())
}

// TestReadyTimerRunsAfterFdsAndQueuesOncePerTarget: in one iteration an fd handler and a queue
// handler both ask to flush the same target; the flush runs once, after both.
func TestReadyTimerRunsAfterFdsAndQueuesOncePerTarget(t *testing.T) {
	q := newTestQueue(t, "in", 16)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(efd) })

	l, err := New(Config{Name: "ready", Batch: 1, Logger: pctest.Logger(t)})
	require.NoError(t, err)
	var log []string // written on the loop goroutine only, read after a barrier
	flush := &timer.ReadyEntry{Fn: func() { log = append(log, "flush") }}
	entered, hold := make(chan struct{}), make(chan struct{})
	require.NoError(t, l.AddFD(efd, unix.EPOLLIN, func(uint32) {
		var b [8]byte
		unix.Read(efd, b[:])
		log = append(log, "fd")
		l.Ready().Add(flush)
	}))
	require.NoError(t, host(t, l, "ready").AddQueue(q, func(tk *task.Task) {
		defer task.Put(tk)
		if tk.ReqID == 1 {
			close(entered)
			<-hold // keep the loop busy while an fd event and a task arrive
			return
		}
		log = append(log, "queue")
		l.Ready().Add(flush)
		l.Ready().Add(flush)
	}))
	require.NoError(t, l.Start())
	t.Cleanup(func() { l.Stop(context.Background()) })

	first := task.Get()
	first.ReqID = 1
	require.NoError(t, q.Push(first))
	<-entered
	unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	require.NoError(t, q.Push(task.Get()))
	close(hold)
	require.NoError(t, l.Barrier(pctest.Context(t)))
	assert.Equal(t, []string{"fd", "queue", "flush"}, log)
}

// TestLoopTimersFireOnTheLoop: timers scheduled from a handler fire on the loop's thread, in
// the order of their deadlines, none early. Timers due by the same wake-up fire in the same
// iteration and read the same cached clock, so their readings need only not decrease.
func TestLoopTimersFireOnTheLoop(t *testing.T) {
	type firing struct {
		timer   int
		elapsed time.Duration
		tid     int
	}
	q := newTestQueue(t, "in", 16)
	fired := make(chan firing, 3)
	delays := []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	var l *Loop
	var timers [3]timer.Timer
	loopTID := make(chan int, 1)
	l = startLoop(t, Config{Name: "timers"}, q, func(tk *task.Task) {
		loopTID <- unix.Gettid()
		start := l.Clock().Nanos()
		for i, d := range delays {
			timers[i].Fn = func() { fired <- firing{i, time.Duration(l.Clock().Nanos() - start), unix.Gettid()} }
			l.After(&timers[i], d)
		}
		task.Put(tk)
	})
	require.NoError(t, q.Push(task.Get()))
	tid := <-loopTID
	var order []int
	var readings []time.Duration
	for range 3 {
		select {
		case f := <-fired:
			order = append(order, f.timer)
			readings = append(readings, f.elapsed)
			assert.Equal(t, tid, f.tid, "timer %d fired off the loop's thread", f.timer)
			assert.GreaterOrEqual(t, f.elapsed, delays[f.timer], "timer %d fired early", f.timer)
		case <-time.After(pctest.Timeout):
			t.Fatal("timer never fired: the loop slept past its deadline")
		}
	}
	assert.Equal(t, []int{1, 2, 0}, order, "in deadline order: 10, 20, 30 ms")
	assert.IsNonDecreasing(t, readings)
}

func TestLoopSurvivesHandlerPanic(t *testing.T) {
	q := newTestQueue(t, "in", 16)
	var handled atomic.Int64
	l, err := New(Config{Name: "panicky", Logger: pctest.Logger(t)})
	require.NoError(t, err)
	require.NoError(t, host(t, l, "panicky").AddQueue(q, func(tk *task.Task) {
		if tk.ReqID == 13 {
			panic("bad task")
		}
		handled.Add(1)
	}))
	require.NoError(t, l.Start())
	t.Cleanup(func() { l.Stop(context.Background()) })
	for i := range 20 {
		tk := task.Get()
		tk.ReqID = uint64(i)
		pushRetry(t, q, tk)
	}
	require.NoError(t, l.Barrier(pctest.Context(t)))
	assert.Equal(t, int64(19), handled.Load())
	assert.Equal(t, uint64(1), l.Stats().Panics)
}

func TestLoopStampsStageEntryTime(t *testing.T) {
	q := newTestQueue(t, "in", 16)
	var entered int64
	l := startStage(t, Config{Name: "stamp"}, StageConfig{Name: "cacheprc", Stage: task.StageCachePrc}, q, func(tk *task.Task) {
		entered = tk.Enter[task.StageCachePrc]
		task.Put(tk)
	}).Loop()
	before := timer.Now()
	require.NoError(t, q.Push(task.Get()))
	require.NoError(t, l.Barrier(pctest.Context(t)))
	assert.GreaterOrEqual(t, entered, before)
}

// TestPipelineStopsInOrder: two loops, A forwarding to B. Stopping both at once (PipelineClose)
// lets B finish everything A forwarded, because A closes B's queue only when A is done.
func TestPipelineStopsInOrder(t *testing.T) {
	aIn := newTestQueue(t, "a.in", 1<<12)
	bIn := newTestQueue(t, "b.in", 1<<12)
	var forwarded, lost, handled atomic.Int64
	a, err := New(Config{Name: "a", PipelineClose: true, Logger: pctest.Logger(t)})
	require.NoError(t, err)
	aStage, err := a.Host(StageConfig{Name: "a",
		OnStopRequest: func() { aIn.Close(context.Background()) }, // no more input: drain what is queued
		OnStop:        func() { bIn.Close(context.Background()) }, // done: B may finish
	})
	require.NoError(t, err)
	require.NoError(t, aStage.AddQueue(aIn, func(tk *task.Task) {
		if bIn.Push(tk) != nil {
			lost.Add(1)
			task.Put(tk)
			return
		}
		forwarded.Add(1)
	}))
	b, err := New(Config{Name: "b", PipelineClose: true, Logger: pctest.Logger(t)})
	require.NoError(t, err)
	require.NoError(t, host(t, b, "b").AddQueue(bIn, func(tk *task.Task) { handled.Add(1); task.Put(tk) }))
	require.NoError(t, a.Start())
	require.NoError(t, b.Start())

	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			if aIn.Push(task.Get()) != nil {
				return // stopped under us: fine, nothing was accepted
			}
		}
	})
	wg.Wait()
	require.NoError(t, StopAll(pctest.Context(t), b, a)) // order of the call does not matter
	assert.Zero(t, lost.Load())
	assert.Equal(t, forwarded.Load(), handled.Load(), "B lost work that A forwarded")
	assert.Equal(t, int64(2000), handled.Load())
}
