package loop

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

// TestHandOffWithinALoopIsDrainedInTheSameIteration: three stages on one loop, A -> B -> C. A
// task pushed into A's queue goes through B and C in the iteration that took it from A, and no
// hand-off between them writes an eventfd (the consumer is the producer's own goroutine).
func TestHandOffWithinALoopIsDrainedInTheSameIteration(t *testing.T) {
	l, err := New(Config{Name: "a+b+c", Logger: pctest.Logger(t)})
	require.NoError(t, err)
	qa, qb, qc := newTestQueue(t, "a.in", 1024), newTestQueue(t, "b.in", 1024), newTestQueue(t, "c.in", 1024)
	const n = 500
	var atA, atC [n]uint64 // the iteration each task was handled in; loop goroutine only
	var handled atomic.Int64
	stageA, stageB, stageC := host(t, l, "a"), host(t, l, "b"), host(t, l, "c")
	require.NoError(t, stageA.AddQueue(qa, func(tk *task.Task) {
		atA[tk.ReqID] = l.iterations.Load()
		assert.NoError(t, qb.Push(tk))
	}))
	require.NoError(t, stageB.AddQueue(qb, func(tk *task.Task) { assert.NoError(t, qc.Push(tk)) }))
	require.NoError(t, stageC.AddQueue(qc, func(tk *task.Task) {
		atC[tk.ReqID] = l.iterations.Load()
		task.Put(tk)
		handled.Add(1)
	}))
	for _, st := range []*Stage{stageA, stageB, stageC} {
		require.NoError(t, st.Start())
	}
	t.Cleanup(func() { l.Stop(context.Background()) })

	for i := range n {
		tk := task.Get()
		tk.ReqID = uint64(i)
		pushRetry(t, qa, tk)
	}
	// Waiting on a counter, not a barrier: a barrier's own tasks would wake B and C.
	pctest.WaitFor(t, func() bool { return handled.Load() == n && l.Stats().Tasks == 3*n }, "tasks lost")
	assert.Equal(t, atA, atC, "a task left A and reached C in different iterations")
	st := l.Stats()
	require.Len(t, st.Stages, 3)
	for _, s := range st.Stages {
		assert.Equal(t, uint64(n), s.Tasks, "stage %s", s.Name)
		assert.Equal(t, "a+b+c", s.Loop)
	}
	assert.Equal(t, uint64(3*n), st.Tasks)
	assert.Zero(t, qb.Stats().Wakeups, "a hand-off within the loop woke it")
	assert.Zero(t, qc.Stats().Wakeups, "a hand-off within the loop woke it")
}

// TestStagesOfOneLoopKeepTheirOwnHooks: each hook runs for the stage it belongs to: OnStart and
// OnStop for every stage, in the order they were hosted; OnQueueClosed and OnPanic for the stage
// whose queue it was; OnStopRequest for every stage. The loop runs only once every stage has
// started.
func TestStagesOfOneLoopKeepTheirOwnHooks(t *testing.T) {
	l, err := New(Config{Name: "shared", Logger: pctest.Logger(t), PipelineClose: true})
	require.NoError(t, err)
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	queues := map[string]*Queue{}
	var stages []*Stage
	for _, name := range []string{"x", "y"} {
		q := newTestQueue(t, name+".in", 16)
		queues[name] = q
		st, err := l.Host(StageConfig{Name: name,
			OnStart:       func() { note(name + " start") },
			OnStopRequest: func() { note(name + " stop requested") },
			OnQueueClosed: func(closed *Queue) {
				assert.Same(t, q, closed)
				note(name + " queue closed")
			},
			OnStop:  func() { note(name + " stop") },
			OnPanic: func(*task.Task) { note(name + " panic") },
		})
		require.NoError(t, err)
		require.NoError(t, st.AddQueue(q, func(tk *task.Task) {
			defer task.Put(tk)
			if tk.ReqID == 1 {
				panic("boom")
			}
		}))
		stages = append(stages, st)
	}
	require.NoError(t, stages[0].Start())
	assert.Equal(t, loopNew, l.state.Load(), "the loop started before every stage it hosts had")
	require.NoError(t, stages[1].Start())

	boom := task.Get()
	boom.ReqID = 1
	require.NoError(t, queues["y"].Push(boom))
	require.NoError(t, l.Barrier(pctest.Context(t)))
	stopped := make(chan error, 1)
	go func() { stopped <- l.Stop(pctest.Context(t)) }()
	require.NoError(t, queues["x"].Close(pctest.Context(t)))
	require.NoError(t, queues["y"].Close(pctest.Context(t)))
	require.NoError(t, <-stopped)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 9, "%q", events)
	assert.Equal(t, []string{"x start", "y start", "y panic"}, events[:3])
	assert.ElementsMatch(t, []string{"x stop requested", "y stop requested", "x queue closed", "y queue closed"}, events[3:7])
	assert.Equal(t, []string{"x stop", "y stop"}, events[7:])
	st := l.Stats()
	assert.Equal(t, uint64(1), st.Panics)
	assert.Equal(t, uint64(0), st.Stages[0].Panics)
	assert.Equal(t, uint64(1), st.Stages[1].Panics)
}

// TestFinishingStageHandsItsLastTasksToAStageOfItsOwnLoop: stage A feeds stage B of the same
// loop through an Outbox into a queue far too small for what A sends. When A's queue is closed,
// A finishes without waiting (Outbox.Finish, then CloseQueue on B's queue, which may be full):
// waiting would stall B, the only consumer, on the same goroutine. B gets every task, and the
// loop ends once B has seen its poison pill.
func TestFinishingStageHandsItsLastTasksToAStageOfItsOwnLoop(t *testing.T) {
	l, err := New(Config{Name: "a+b", Logger: pctest.Logger(t), PipelineClose: true, Batch: 4})
	require.NoError(t, err)
	aIn, bIn := newTestQueue(t, "a.in", 1024), newTestQueue(t, "b.in", 2)
	var out *Outbox
	a, err := l.Host(StageConfig{Name: "a", OnQueueClosed: func(*Queue) {
		out.Finish(func() { l.CloseQueue(bIn) })
	}})
	require.NoError(t, err)
	const fanOut = 8
	require.NoError(t, a.AddQueue(aIn, func(tk *task.Task) {
		for range fanOut {
			out.Push(task.Get())
		}
		task.Put(tk)
	}))
	out = NewOutbox(l, bIn.Push, nil)
	var handled int // loop goroutine only; read after the loop ended
	b := host(t, l, "b")
	require.NoError(t, b.AddQueue(bIn, func(tk *task.Task) { handled++; task.Put(tk) }))
	require.NoError(t, a.Start())
	require.NoError(t, b.Start())

	const n = 200
	for range n {
		pushRetry(t, aIn, task.Get())
	}
	stopped := make(chan error, 1)
	go func() { stopped <- l.Stop(pctest.Context(t)) }()
	require.NoError(t, aIn.Close(pctest.Context(t)))
	require.NoError(t, <-stopped)
	assert.Equal(t, n*fanOut, handled, "B lost tasks A handed it while finishing")
	assert.NotZero(t, out.Stuck(), "the test meant B's queue to be full at times")
}

// TestCloseQueueWaitsForRoomWithoutBlocking: closing a full queue from a loop is retried on
// the loop's timer while its consumer makes room; the loop does not end in between.
func TestCloseQueueWaitsForRoomWithoutBlocking(t *testing.T) {
	l, err := New(Config{Name: "closer", Logger: pctest.Logger(t), PipelineClose: true})
	require.NoError(t, err)
	in, full := newTestQueue(t, "in", 16), newTestQueue(t, "full", 2)
	require.NoError(t, full.Push(task.Get()))
	require.NoError(t, full.Push(task.Get()))
	st, err := l.Host(StageConfig{Name: "closer", OnQueueClosed: func(*Queue) { l.CloseQueue(full) }})
	require.NoError(t, err)
	require.NoError(t, st.AddQueue(in, task.Put))
	require.NoError(t, st.Start())
	stopped := make(chan error, 1)
	go func() { stopped <- l.Stop(pctest.Context(t)) }()
	require.NoError(t, in.Close(pctest.Context(t)))
	pctest.WaitFor(t, func() bool { return l.Stats().Iterations > 3 }, "the loop did not go on while the close waited")
	assert.False(t, full.Closed(), "a full queue cannot be closed yet")
	select {
	case err := <-stopped:
		t.Fatalf("the loop ended before it had closed the queue it feeds: %v", err)
	default:
	}
	task.Put(full.pop()) // its consumer makes room
	require.NoError(t, <-stopped)
	assert.True(t, full.Closed())
	task.Put(full.pop())
	assert.Equal(t, task.OpStop, full.pop().Op, "the poison pill comes after what was queued")
	full.closeFD()
}
