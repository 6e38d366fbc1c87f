package loop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

// Config configures a Loop. The zero value of every field but Name is a usable default.
type Config struct {
	// Name identifies the loop in logs, errors and stats ("incoming", "cacheprc", ...).
	Name string
	// Stage is stamped into Task.Enter as tasks are first taken from this loop's queues.
	Stage task.Stage
	// CPUs, if not empty, pins the loop's OS thread to these CPUs (sched_setaffinity).
	CPUs []int
	// Batch is the most tasks taken from one queue per iteration, so that one busy queue cannot
	// starve the others or the fds. Default 256.
	Batch int
	// Tick is the timing wheel's resolution. Default 1 ms.
	Tick time.Duration
	// Logger receives the loop's own log lines. Default: discard.
	Logger *slog.Logger

	// PipelineClose selects how Stop ends the loop. False (the default, for a loop on its own):
	// Stop closes every inbound queue, so the loop handles what was already queued and exits.
	// True (for a stage in the pipeline): Stop closes only the loop's control queue, runs
	// OnStopRequest, and the loop exits once its producers have closed its other queues, which
	// they do as they finish, so that work drains in pipeline order.
	PipelineClose bool

	// Hooks, each run on the loop's goroutine.
	OnStart       func()         // before the first iteration
	OnStopRequest func()         // when Stop's poison pill arrives on the control queue
	OnQueueClosed func(q *Queue) // when a queue's poison pill arrives (after every task before it)
	OnStop        func()         // after the last iteration, before the loop's fds are closed
	// OnPanic runs when a handler panicked while handling t (recovered, logged and counted):
	// the stage restores what the handler may have left half done, and answers t if nothing
	// else will. The loop goes on with the next task.
	OnPanic func(t *task.Task)
}

type inbound struct {
	q      *Queue
	handle func(*task.Task)
	done   bool // the queue's poison pill has been taken
}

// Loop is the event loop of one stage: one goroutine locked to one OS thread, one epoll
// instance, the stage's inbound queues, its cached clock, timing wheel and ReadyTimer.
//
// Set-up methods (AddFD, AddQueue) are called before Start or from the loop's own goroutine;
// Start, Stop, Barrier, Done and Stats are safe for concurrent use; everything else (Clock,
// Wheel, Ready, After, ModFD, RemoveFD) belongs to the loop's goroutine, that is, to the stage's
// handlers and callbacks.
type Loop struct {
	cfg  Config
	log  *slog.Logger
	epfd int

	clock *timer.Clock
	wheel *timer.Wheel
	ready timer.Ready

	fds     map[int32]func(events uint32) // owned by the loop goroutine once started
	queues  []*inbound                    // control queue first
	control *Queue
	events  []unix.EpollEvent

	state    atomic.Int32 // loopNew, loopRunning, loopStopping, loopStopped
	started  chan error
	done     chan struct{}
	stopOnce sync.Once
	err      error // why the loop failed, if it did; written before done is closed

	iterations atomic.Uint64
	sleeps     atomic.Uint64
	tasks      atomic.Uint64
	panics     atomic.Uint64
	busyNs     atomic.Int64
	startNs    atomic.Int64 // when the loop started (Stats reads it from any goroutine)
	awakeSince int64        // clock reading when the loop last woke from a sleep; loop goroutine only
}

const (
	loopNew int32 = iota
	loopRunning
	loopStopping
	loopStopped
)

const controlQueueSize = 64

// NewLoop creates a loop's epoll instance, clock, wheel and control queue. The loop does
// nothing until Start.
func New(cfg Config) (*Loop, error) {
	if cfg.Name == "" {
		return nil, errors.New("loop: Config.Name is required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loop %s: %w", cfg.Name, os.NewSyscallError("epoll_create1", err))
	}
	clock := timer.NewClock()
	l := &Loop{
		cfg: cfg, log: log.With("loop", cfg.Name), epfd: epfd,
		clock: clock, wheel: timer.NewWheel(cfg.Tick, clock.Nanos()),
		fds:     make(map[int32]func(uint32)),
		events:  make([]unix.EpollEvent, 128),
		started: make(chan error, 1), done: make(chan struct{}),
	}
	l.control, err = NewQueue(cfg.Name+".control", controlQueueSize)
	if err == nil {
		err = l.AddQueue(l.control, func(t *task.Task) {
			l.log.Error("unexpected task on control queue", "task", t)
			task.Put(t)
		})
	}
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	return l, nil
}

// Name returns the loop's name.
func (l *Loop) Name() string { return l.cfg.Name }

// Clock returns the loop's cached clock. Loop goroutine only (its reading is safe anywhere).
func (l *Loop) Clock() *timer.Clock { return l.clock }

// Wheel returns the loop's timing wheel. Loop goroutine only.
func (l *Loop) Wheel() *timer.Wheel { return l.wheel }

// Ready returns the loop's ReadyTimer. Loop goroutine only.
func (l *Loop) Ready() *timer.Ready { return &l.ready }

// After schedules t to fire d after the loop's cached now. Loop goroutine only.
func (l *Loop) After(t *timer.Timer, d time.Duration) {
	l.wheel.Schedule(t, l.clock.Nanos()+int64(d))
}

// AddFD registers fd with the loop's epoll, edge-triggered, for events (EPOLLIN, EPOLLOUT...);
// h runs on the loop goroutine with the ready events. A closed or invalid fd is an error.
// Call before Start or from the loop goroutine.
func (l *Loop) AddFD(fd int, events uint32, h func(events uint32)) error {
	if h == nil {
		return fmt.Errorf("loop %s: AddFD(%d): nil handler", l.cfg.Name, fd)
	}
	ev := unix.EpollEvent{Events: events | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("loop %s: register fd %d: %w", l.cfg.Name, fd, os.NewSyscallError("epoll_ctl", err))
	}
	l.fds[int32(fd)] = h
	return nil
}

// ModFD changes the events fd is registered for (for example, arming EPOLLOUT when a socket
// buffer is full). Loop goroutine only.
func (l *Loop) ModFD(fd int, events uint32) error {
	if _, ok := l.fds[int32(fd)]; !ok {
		return fmt.Errorf("%w: loop %s: fd %d", ErrUnknownFD, l.cfg.Name, fd)
	}
	ev := unix.EpollEvent{Events: events | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return fmt.Errorf("loop %s: modify fd %d: %w", l.cfg.Name, fd, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

// RemoveFD unregisters fd. The caller still owns (and closes) it. Loop goroutine only.
func (l *Loop) RemoveFD(fd int) error {
	if _, ok := l.fds[int32(fd)]; !ok {
		return fmt.Errorf("%w: loop %s: fd %d", ErrUnknownFD, l.cfg.Name, fd)
	}
	delete(l.fds, int32(fd))
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("loop %s: unregister fd %d: %w", l.cfg.Name, fd, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

// AddQueue makes the loop the consumer of q: every task pushed into q is passed to handle on
// the loop goroutine, which then owns it. A queue has one consumer; adding it to a second loop
// is an error. Call before Start.
func (l *Loop) AddQueue(q *Queue, handle func(*task.Task)) error {
	if l.state.Load() != loopNew {
		return fmt.Errorf("%w: loop %s: AddQueue(%s)", ErrLoopStarted, l.cfg.Name, q.name)
	}
	if !q.owner.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: %s", ErrQueueInUse, q.name)
	}
	if err := l.AddFD(q.efd, unix.EPOLLIN, func(uint32) { q.drainEventfd() }); err != nil {
		q.owner.Store(false)
		return err
	}
	l.queues = append(l.queues, &inbound{q: q, handle: handle})
	return nil
}

// Start runs the loop on a new goroutine locked to its own OS thread, and returns once that
// thread is set up (or why it could not be).
func (l *Loop) Start() error {
	if !l.state.CompareAndSwap(loopNew, loopRunning) {
		if l.state.Load() == loopRunning {
			return fmt.Errorf("%w: %s", ErrLoopStarted, l.cfg.Name)
		}
		return fmt.Errorf("%w: %s", ErrLoopStopped, l.cfg.Name)
	}
	go l.run()
	return <-l.started
}

// Done is closed when the loop has exited.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Err returns why the loop failed, once Done is closed; nil after a clean stop.
func (l *Loop) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Stop asks the loop to finish (see Config.PipelineClose for what it closes) and waits until
// it has handled every task already queued and exited, or until ctx is done. A second call
// waits the same way and then returns ErrLoopStopped. A loop that was never started is just
// released.
func (l *Loop) Stop(ctx context.Context) error {
	first := false
	l.stopOnce.Do(func() {
		first = true
		if l.state.CompareAndSwap(loopNew, loopStopped) {
			l.release()
			close(l.done)
			return
		}
		l.state.Store(loopStopping)
		l.requestStop(ctx)
	})
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("loop: stopping loop %s: %w", l.cfg.Name, ctx.Err())
	}
	if !first {
		return fmt.Errorf("%w: %s", ErrLoopStopped, l.cfg.Name)
	}
	return l.err
}

// StopNow stops the loop whatever its producers do: every inbound queue is closed at once, so
// the loop handles what was queued and exits. For a pipeline that could not start, where the
// stages that would close the queues may not be running. Otherwise like Stop.
func (l *Loop) StopNow(ctx context.Context) error {
	l.cfg.PipelineClose = false // before Stop reads it, on this goroutine: the loop never does
	return l.Stop(ctx)
}

func (l *Loop) requestStop(ctx context.Context) {
	if !l.cfg.PipelineClose {
		for _, in := range l.queues[1:] {
			if err := in.q.Close(ctx); err != nil && !errors.Is(err, ErrQueueClosed) {
				l.log.Warn("closing queue on stop", "queue", in.q.name, "err", err)
			}
		}
	}
	if err := l.control.Close(ctx); err != nil && !errors.Is(err, ErrQueueClosed) {
		l.log.Warn("closing control queue on stop", "err", err)
	}
}

// StopAll stops several loops that depend on each other (a pipeline): it asks each to stop,
// then waits for all, so that no loop waits on one not yet asked.
func StopAll(ctx context.Context, loops ...*Loop) error {
	errs := make([]error, len(loops))
	var wg sync.WaitGroup
	for i, l := range loops {
		wg.Go(func() { errs[i] = l.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Barrier returns once every task pushed into the loop's queues before the call has been
// handled and the ReadyTimer of the iteration that handled the last of them has run. Tests use
// it instead of sleeping. A closed queue counts as passed.
func (l *Loop) Barrier(ctx context.Context) error {
	var pending atomic.Int32
	passed := make(chan struct{})
	pending.Store(int32(len(l.queues)))
	pass := func() {
		if pending.Add(-1) == 0 {
			close(passed)
		}
	}
	accepted := 0
	for _, in := range l.queues {
		if err := pushOrPut(ctx, in.q, task.NewBarrier(pass)); err != nil {
			if !errors.Is(err, ErrQueueClosed) {
				return fmt.Errorf("loop: barrier on loop %s: %w", l.cfg.Name, err)
			}
			pass()
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return fmt.Errorf("%w: %s: barrier on a stopped loop", ErrLoopStopped, l.cfg.Name)
	}
	select {
	case <-passed:
		return nil
	case <-l.done:
		return fmt.Errorf("%w: %s: barrier cut short", ErrLoopStopped, l.cfg.Name)
	case <-ctx.Done():
		return fmt.Errorf("loop: barrier on loop %s: %w", l.cfg.Name, ctx.Err())
	}
}

// Run calls fn on the loop's goroutine (at the end of an iteration, like a ReadyTimer callback)
// and returns once it has run. For control from outside the loop: shutdown steps, inspection in
// tests.
func (l *Loop) Run(ctx context.Context, fn func()) error {
	ran := make(chan struct{})
	if err := pushOrPut(ctx, l.control, task.NewBarrier(func() { fn(); close(ran) })); err != nil {
		return fmt.Errorf("loop: run on loop %s: %w", l.cfg.Name, err)
	}
	select {
	case <-ran:
		return nil
	case <-l.done:
		return fmt.Errorf("%w: %s", ErrLoopStopped, l.cfg.Name)
	case <-ctx.Done():
		return fmt.Errorf("loop: run on loop %s: %w", l.cfg.Name, ctx.Err())
	}
}

// PushWait pushes t, waiting out a full queue (backing off from 1 µs to 1 ms) until ctx is
// done. For goroutines that are not loops (Outgoing's store goroutines, Barrier's and Run's
// callers): a loop never waits. On an error (ErrQueueClosed, or ctx's) t is still the caller's.
func PushWait(ctx context.Context, q *Queue, t *task.Task) error {
	backoff := time.Microsecond
	for {
		err := q.Push(t)
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Millisecond)
		}
	}
}

// pushOrPut pushes t with PushWait, returning it to the pool if it could not.
func pushOrPut(ctx context.Context, q *Queue, t *task.Task) error {
	err := PushWait(ctx, q, t)
	if err != nil {
		task.Put(t)
	}
	return err
}

// Stats is a snapshot of a loop's counters.
type Stats struct {
	Name        string
	Iterations  uint64        // loop iterations
	Sleeps      uint64        // times the loop announced sleep to its producers (each allows one eventfd write per queue)
	Tasks       uint64        // tasks handed to handlers
	Panics      uint64        // handler panics recovered
	Busy        time.Duration // time spent outside epoll_wait sleeps
	Uptime      time.Duration // time since Start
	Utilisation float64       // Busy / Uptime
	Timers      int           // scheduled timers (approximate from other goroutines)
	Queues      []QueueStats  // inbound queues, control queue first
}

// Stats returns a snapshot of the loop's counters. Safe for concurrent use.
func (l *Loop) Stats() Stats {
	s := Stats{
		Name: l.cfg.Name, Iterations: l.iterations.Load(), Sleeps: l.sleeps.Load(),
		Tasks: l.tasks.Load(), Panics: l.panics.Load(), Busy: time.Duration(l.busyNs.Load()),
	}
	if start := l.startNs.Load(); l.state.Load() != loopNew && start != 0 {
		s.Uptime = time.Duration(timer.Now() - start)
	}
	if s.Uptime > 0 {
		s.Utilisation = float64(s.Busy) / float64(s.Uptime)
	}
	for _, in := range l.queues {
		s.Queues = append(s.Queues, in.q.Stats())
	}
	return s
}
