package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// OutgoingConfig configures Outgoing. Zero values mean the defaults.
type OutgoingConfig struct {
	Workers       int           // goroutines serving loads; default 8
	MaxBatch      int           // writes (keys) per commit at most; default 1024
	SweepInterval time.Duration // how often expired records are deleted from the store; default 10 s
	Queue         int           // inbound queue capacity; default 16384
	ProbeInterval time.Duration // how often a shared store's reachability and feed are checked; default 1 s
	NoGroupCommit bool          // kill switch: commit writes one at a time (one key, one change)
	Observer      StoreObserver // told of every store load and commit (metrics); nil: none
	// Loop is the loop that hosts the stage (the daemon's mapping: daemon/pipeline.go); nil: a
	// loop of its own.
	Loop   *loop.Loop
	Logger *slog.Logger
}

// StoreObserver is told how long each store call took, for metrics. Outgoing calls it from its
// worker and committer goroutines, concurrently, so it must be safe for concurrent use and
// quick.
type StoreObserver interface {
	ObserveLoad(took time.Duration, err error)
	ObserveCommit(writes int, took time.Duration, err error)
}

// Outgoing talks to the store (package nameservice) without ever blocking its loop. Its loop
// hands loads to a bounded set of worker goroutines through a channel. Writes do not pass
// through its loop: CachePrc hands each group commit straight to Outgoing's committer goroutine
// through the CommitPort (committer.go), and the committer answers into CachePrc's completions.
// Results go back to CachePrc as tasks, from those goroutines. The sweep of expired records runs
// on a goroutine of its own with a ticker, one sweep at a time.
//
// What runs where: request and finish on the loop; loadWorker, committer, sweeper and the
// change feed's goroutines (outgoing_store.go, committer.go) on their own, touching nothing of
// the loop's but the channels and CachePrc's completion queue. All of them start with the loop
// (start) and end in finish, after CachePrc has closed the loop's queue: by then CachePrc has no
// load and no commit in flight.
type Outgoing struct {
	cfg   OutgoingConfig
	log   *slog.Logger
	stage *loop.Stage // the stage on its loop: its queue and hooks
	loop  *loop.Loop  // the loop that hosts it (and maybe other stages)
	in    *loop.Queue // from CachePrc
	out   *loop.Queue // CachePrc's completions
	store nameservice.Store

	loads  chan *task.Task // to the load workers
	port   *CommitPort     // CachePrc's way to the committer goroutine (committer.go)
	toLoad *loop.Outbox    // loads the workers have no room for yet (kept: never lost)

	ctx     context.Context    // ends the sweeper and the change feed
	cancel  context.CancelFunc // at finish
	workers sync.WaitGroup     // every goroutine of the stage
	started atomic.Bool        // the goroutines began (the loop ran)
	stopped chan struct{}      // closed once they have ended and CachePrc's completions are closed
}

// NewOutgoing creates the stage; completions go to out (CachePrc's completion queue). Its
// goroutines start with the loop.
func NewOutgoing(cfg OutgoingConfig, store nameservice.Store, out *loop.Queue) (*Outgoing, error) {
	cfg.setDefaults()
	o := &Outgoing{cfg: cfg, log: cfg.Logger.With("stage", "outgoing"), out: out, store: store,
		loads: make(chan *task.Task, cfg.Workers*4), stopped: make(chan struct{})}
	_, shared := store.(Feed)
	o.port = newCommitPort(cfg.MaxBatch, cfg.NoGroupCommit || shared)
	o.ctx, o.cancel = context.WithCancel(context.Background())
	var err error
	if o.in, err = loop.NewQueue("outgoing.requests", cfg.Queue); err != nil {
		return nil, err
	}
	o.stage, err = hostStage(cfg.Loop, loop.Config{Name: "outgoing", Logger: cfg.Logger, PipelineClose: true},
		loop.StageConfig{Name: "outgoing", Stage: task.StageOutgoing, OnStart: o.start, OnQueueClosed: func(*loop.Queue) { o.finish() }})
	if err == nil {
		o.loop = o.stage.Loop()
		err = o.stage.AddQueue(o.in, o.request)
	}
	if err != nil {
		return nil, err
	}
	o.toLoad = loop.NewOutbox(o.loop, sendTo(o.loads), nil)
	return o, nil
}

func (c *OutgoingConfig) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1024
	}
	if c.NoGroupCommit {
		c.MaxBatch = 1
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 10 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = 1 << 14
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// sendTo makes a channel an Outbox's destination: a send that would block is a full queue.
func sendTo(ch chan<- *task.Task) func(*task.Task) error {
	return func(t *task.Task) error {
		t.Queued = 0 // a channel to goroutines, not a loop's queue: its wait is the store's latency
		select {
		case ch <- t:
			return nil
		default:
			return loop.ErrQueueFull
		}
	}
}

// start runs on the loop before its first iteration: the goroutines begin.
func (o *Outgoing) start() {
	o.started.Store(true)
	for range o.cfg.Workers {
		o.workers.Go(o.loadWorker)
	}
	o.workers.Go(o.committer)
	o.workers.Go(o.sweeper)
}

// Requests returns the queue CachePrc sends loads to.
func (o *Outgoing) Requests() *loop.Queue { return o.in }

// Commits returns the port through which CachePrc hands group commits to the committer.
func (o *Outgoing) Commits() *CommitPort { return o.port }

// Loop returns the loop that hosts the stage.
func (o *Outgoing) Loop() *loop.Loop { return o.loop }

// Stage returns the stage on its loop (for its own stats).
func (o *Outgoing) Stage() *loop.Stage { return o.stage }

// Start runs the stage (its loop runs once every stage it hosts has started).
func (o *Outgoing) Start() error { return o.stage.Start() }

// Stop stops the stage on its own (not in a pipeline): it closes its inbound queue, so it
// finishes what was queued, and waits for the loop and the stage's goroutines to end.
func (o *Outgoing) Stop(ctx context.Context) error {
	if err := o.in.Close(ctx); err != nil && !errors.Is(err, loop.ErrQueueClosed) {
		return err
	}
	if err := o.loop.Stop(ctx); err != nil || !o.started.Load() {
		return err
	}
	select {
	case <-o.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stages: outgoing: stopping its goroutines: %w", ctx.Err())
	}
}

func (o *Outgoing) request(t *task.Task) {
	switch t.Op {
	case task.OpLoad, task.OpScan: // both read the store: the workers' work
		o.toLoad.Push(t)
	default:
		t.Fail(task.CodeInternal, fmt.Errorf("outgoing does not serve %s", t.Op))
		o.complete(t)
	}
}

// finish runs on the loop when CachePrc has closed the stage's queue (it has nothing in flight
// any more, and every task before the poison pill has been handled): once the waiting loads
// have gone to the workers, the goroutines are told to stop.
func (o *Outgoing) finish() {
	o.toLoad.Finish(o.stopGoroutines)
}

// stopGoroutines ends the goroutines and, once they have ended, closes CachePrc's completion
// queue after the last completion. The wait is a goroutine's of its own: the loop may host other
// stages (CachePrc) that must go on meanwhile, and it is never a loop's to wait.
func (o *Outgoing) stopGoroutines() {
	close(o.loads)
	close(o.port.stop)
	o.cancel()
	go func() {
		defer close(o.stopped)
		o.workers.Wait()
		stageFinished("outgoing")
		if err := o.out.Close(context.Background()); err != nil && !errors.Is(err, loop.ErrQueueClosed) {
			o.log.Warn("closing cacheprc's completions", "err", err)
		}
	}()
}
