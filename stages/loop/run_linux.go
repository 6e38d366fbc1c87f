package loop

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/task"
)

// run is the loop's goroutine: set-up, iterations until every inbound queue has delivered its
// poison pill and no finishing stage keeps it alive (keepAlive), then tear-down.
func (l *Loop) run() {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, affinity and all
	if err := l.setAffinity(); err != nil {
		l.state.Store(loopStopped)
		l.err = err
		l.release()
		close(l.done)
		l.started <- err
		return
	}
	l.awakeSince = l.clock.Refresh()
	l.startNs.Store(l.awakeSince)
	l.started <- nil
	l.log.Debug("loop started", "cpus", l.cfg.CPUs, "stages", len(l.stages))
	for _, st := range l.stages {
		if st.cfg.OnStart != nil {
			st.cfg.OnStart()
		}
	}

	for l.open() > 0 || l.keepAlive > 0 {
		if err := l.iterate(); err != nil {
			l.err = fmt.Errorf("%w: %s: %w", ErrLoopFailed, l.cfg.Name, err)
			l.log.Error("loop failed", "err", err)
			break
		}
	}

	for _, st := range l.stages {
		if st.cfg.OnStop != nil {
			st.cfg.OnStop()
		}
	}
	l.state.Store(loopStopped)
	l.release()
	l.log.Debug("loop stopped", "iterations", l.iterations.Load(), "tasks", l.Stats().Tasks)
	close(l.done)
}

func (l *Loop) setAffinity() error {
	if len(l.cfg.CPUs) == 0 {
		return nil
	}
	var set unix.CPUSet
	for _, c := range l.cfg.CPUs {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("loop %s: pin to cpus %v: %w", l.cfg.Name, l.cfg.CPUs, os.NewSyscallError("sched_setaffinity", err))
	}
	return nil
}

// open returns how many inbound queues have not yet delivered their poison pill.
func (l *Loop) open() int {
	n := 0
	for _, in := range l.queues {
		if !in.done {
			n++
		}
	}
	return n
}

// iterate is one turn of the loop: sleep, clock, fds, queues, timers, ReadyTimer. A panic in a
// handler is logged and counted; the loop goes on with the next iteration.
func (l *Loop) iterate() (err error) {
	defer func() {
		if r := recover(); r != nil {
			l.panics.Add(1)
			l.log.Error("handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	l.iterations.Add(1)

	timeout := l.timeout()
	slept := timeout != 0 && l.announceSleep()
	if !slept {
		timeout = 0
	}
	n, werr := unix.EpollWait(l.epfd, l.events, timeout)
	if slept {
		for _, in := range l.queues {
			in.q.sleeping.Store(0)
		}
	}
	if werr != nil && !errors.Is(werr, unix.EINTR) {
		return os.NewSyscallError("epoll_wait", werr)
	}
	now := l.clock.Refresh()
	if slept {
		l.awakeSince = now
	}

	for i := 0; i < n; i++ {
		ev := &l.events[i]
		if h := l.fds[ev.Fd]; h != nil {
			h(ev.Events)
		}
	}
	l.drain()
	l.wheel.Advance(now)
	l.ready.Run()

	if l.ready.Pending() || l.hasWork() {
		return nil // busy: no clock read, go round again
	}
	// About to sleep: everything since the last wake-up was work.
	l.busyNs.Add(l.clock.Refresh() - l.awakeSince)
	return nil
}

// timeout returns epoll_wait's timeout in ms: 0 if there is work now, the time to the next
// timer, or -1 for none.
func (l *Loop) timeout() int {
	if l.ready.Pending() || l.hasWork() {
		return 0
	}
	next, ok := l.wheel.NextDeadline()
	if !ok {
		return -1
	}
	wait := next - l.clock.Nanos()
	if wait <= 0 {
		return 0
	}
	const msNs = 1_000_000
	return int(min((wait+msNs-1)/msNs, math.MaxInt32))
}

// announceSleep tells every producer that the loop is about to sleep, then checks the queues
// once more. It returns false (and withdraws the announcement) if a task slipped in.
func (l *Loop) announceSleep() bool {
	l.sleeps.Add(1)
	for _, in := range l.queues {
		if !in.done {
			in.q.sleeping.Store(1)
		}
	}
	if !l.hasWork() {
		return true
	}
	for _, in := range l.queues {
		in.q.sleeping.Store(0)
	}
	return false
}

func (l *Loop) hasWork() bool {
	for _, in := range l.queues {
		if !in.done && !in.q.empty() {
			return true
		}
	}
	return false
}

// drain takes up to Batch tasks from each open queue, in order (control queue first, then the
// stages' queues in the order they were hosted), and hands them to its handler. Control tasks
// (poison pills, barriers) are consumed here. A task one stage pushes into a queue of another
// stage of this loop further down the order is handled in this same pass.
func (l *Loop) drain() {
	now := l.clock.Nanos()
	for _, in := range l.queues {
		if in.done {
			continue
		}
		q := in.q
		n := uint64(0)
		for range l.cfg.Batch {
			t := q.pop()
			if t == nil {
				break
			}
			switch t.Op {
			case task.OpStop:
				task.Put(t)
				in.done = true
				l.queueClosed(in)
			case task.OpBarrier:
				if done := t.BarrierFunc(); done != nil {
					l.ready.Post(done)
				}
				task.Put(t)
			default:
				if t.Enter[in.stage.cfg.Stage] == 0 {
					t.Enter[in.stage.cfg.Stage] = now
				}
				if t.Queued != 0 {
					q.wait.Observe(now - t.Queued)
					t.Queued = 0
				}
				n++
				l.handle(in, t)
			}
			if in.done {
				break
			}
		}
		q.popped.Store(q.head)
		if n > 0 {
			in.stage.tasks.Add(n)
		}
	}
}

// handle passes t to its queue's handler. A panic there is contained to that task: logged,
// counted, and handed to the stage's OnPanic so it can repair its state; the loop goes on.
func (l *Loop) handle(in *inbound, t *task.Task) {
	defer func() {
		if r := recover(); r != nil {
			st := in.stage
			st.panics.Add(1)
			l.log.Error("handler panicked", "stage", st.cfg.Name, "task", t.String(), "panic", r, "stack", string(debug.Stack()))
			if st.cfg.OnPanic != nil {
				st.cfg.OnPanic(t)
			}
		}
	}()
	in.handle(t)
}

func (l *Loop) queueClosed(in *inbound) {
	if in.stage == nil { // the control queue: Stop
		for _, st := range l.stages {
			if st.cfg.OnStopRequest != nil {
				st.cfg.OnStopRequest()
			}
		}
		return
	}
	if in.stage.cfg.OnQueueClosed != nil {
		in.stage.cfg.OnQueueClosed(in.q)
	}
}

// release closes the loop's epoll fd and its queues' eventfds. Called once, after the loop's
// goroutine is done with them (or instead of starting it).
func (l *Loop) release() {
	if err := unix.Close(l.epfd); err != nil {
		l.log.Warn("closing epoll fd", "err", err)
	}
	for _, in := range l.queues {
		if err := in.q.closeFD(); err != nil {
			l.log.Warn("closing queue eventfd", "queue", in.q.name, "err", err)
		}
	}
}
