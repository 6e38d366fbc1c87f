package loop

import (
	"fmt"
	"sync/atomic"

	"github.com/pipecache/pipecache/task"
)

// A loop hosts one or more stages (Loop.Host). A stage is a role with its own queues and hooks;
// the loop is the thread that runs them: one goroutine, one epoll, one clock, one timing wheel,
// one ReadyTimer shared by every stage it hosts. Which loop hosts which stage is decided once, at
// start (package daemon, pipeline.go); the stages' code is the same whatever the mapping, because
// a stage touches only its own state, and reaches another stage only through that stage's queues.
//
// When two stages share a loop, a hand-off between them is a push into a ring that the same
// iteration drains: the consumer is awake (it is this goroutine), so no eventfd is written, and
// nothing sleeps or wakes. The loop drains its queues in the order the stages were hosted, each
// stage's queues in the order it added them, so a loop that hosts the stages in pipeline order
// (CachePrc before Incoming) carries a request from Incoming's socket through CachePrc to
// Incoming's reply and its flush in one iteration.

// StageConfig describes a stage hosted by a loop: its name and the hooks the loop calls for it,
// each on the loop's goroutine.
type StageConfig struct {
	// Name identifies the stage in logs, errors and stats ("incoming", "cacheprc", ...).
	Name string
	// Stage is stamped into Task.Enter as tasks are first taken from the stage's queues.
	Stage task.Stage

	OnStart       func()         // before the loop's first iteration, in the order the stages were hosted
	OnStopRequest func()         // when the loop's Stop arrives (its control queue's poison pill)
	OnQueueClosed func(q *Queue) // when one of the stage's queues delivers its poison pill (after every task before it)
	OnStop        func()         // after the loop's last iteration, before its fds are closed
	// OnPanic runs when one of the stage's queue handlers panicked while handling t (recovered,
	// logged and counted): the stage restores what the handler may have left half done, and
	// answers t if nothing else will. The loop goes on with the next task.
	OnPanic func(t *task.Task)
}

// Stage is one stage hosted by a loop: the queues it consumes and its hooks. Its set-up methods
// (AddQueue) are called before the loop starts; Start, Loop, Name and Stats are safe for
// concurrent use.
type Stage struct {
	loop    *Loop
	cfg     StageConfig
	queues  []*inbound
	started atomic.Bool

	tasks, panics atomic.Uint64
}

// Host adds a stage to the loop. Call before Start.
func (l *Loop) Host(cfg StageConfig) (*Stage, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("loop %s: StageConfig.Name is required", l.cfg.Name)
	}
	if l.state.Load() != loopNew {
		return nil, fmt.Errorf("%w: loop %s: Host(%s)", ErrLoopStarted, l.cfg.Name, cfg.Name)
	}
	s := &Stage{loop: l, cfg: cfg}
	l.stages = append(l.stages, s)
	return s, nil
}

// Name returns the stage's name.
func (s *Stage) Name() string { return s.cfg.Name }

// Loop returns the loop that hosts the stage.
func (s *Stage) Loop() *Loop { return s.loop }

// AddQueue makes the stage the consumer of q: every task pushed into q is passed to handle on
// the loop's goroutine, which then owns it. A queue has one consumer; adding it twice is an
// error. Call before the loop starts.
func (s *Stage) AddQueue(q *Queue, handle func(*task.Task)) error {
	in, err := s.loop.addInbound(q, s, handle)
	if err != nil {
		return err
	}
	s.queues = append(s.queues, in)
	return nil
}

// Start says the stage is ready to run. The loop starts once every stage it hosts has been
// started (a loop hosting one stage, at once), and the Start that starts it returns its
// start-up error, if any; the Starts before it return nil.
func (s *Stage) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: stage %s", ErrLoopStarted, s.cfg.Name)
	}
	for _, other := range s.loop.stages {
		if !other.started.Load() {
			return nil
		}
	}
	return s.loop.Start()
}

// StageStats is a snapshot of one stage's counters.
type StageStats struct {
	Name   string
	Loop   string       // the loop that hosts it
	Tasks  uint64       // tasks handed to its handlers
	Panics uint64       // its handlers' panics recovered
	Queues []QueueStats // its inbound queues
}

// Stats returns a snapshot of the stage's counters. Safe for concurrent use.
func (s *Stage) Stats() StageStats {
	st := StageStats{Name: s.cfg.Name, Loop: s.loop.cfg.Name, Tasks: s.tasks.Load(), Panics: s.panics.Load()}
	for _, in := range s.queues {
		st.Queues = append(st.Queues, in.q.Stats())
	}
	return st
}
