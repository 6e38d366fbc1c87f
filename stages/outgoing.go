package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

// OutgoingConfig configures Outgoing. Zero values mean the defaults.
type OutgoingConfig struct {
	Workers       int           // goroutines serving loads; default 8
	MaxBatch      int           // writes per commit at most; default 1024
	SweepInterval time.Duration // how often expired records are deleted from the store; default 10 s
	Queue         int           // inbound queue capacity; default 16384
	ProbeInterval time.Duration // how often a shared store's reachability and feed are checked; default 1 s
	NoGroupCommit bool          // kill switch: commit writes one at a time
	Observer      StoreObserver // told of every store load and commit (metrics); nil: none
	Logger        *slog.Logger
}

// StoreObserver is told how long each store call took, for metrics. Outgoing calls it from its
// worker and committer goroutines, concurrently, so it must be safe for concurrent use and
// quick.
type StoreObserver interface {
	ObserveLoad(took time.Duration, err error)
	ObserveCommit(writes int, took time.Duration, err error)
}

// Outgoing talks to the store (package nameservice) without ever blocking its loop. Loads run on
// a bounded set of worker goroutines; writes are committed by one committer goroutine in groups:
// every write that arrives while a commit is running goes into the next one, so the store's
// fsync is shared by all of them. Results go back to CachePrc as tasks.
type Outgoing struct {
	cfg   OutgoingConfig
	log   *slog.Logger
	loop  *loop.Loop
	in    *loop.Queue // from CachePrc, and the committer's "done" notices
	out   *loop.Queue // CachePrc's completions
	store nameservice.Store
	// stopFeed ends the change feed's goroutine (Follow).
	stopFeed context.CancelFunc

	loads     chan *task.Task   // to the workers
	commits   chan []*task.Task // to the committer (capacity 1)
	backlog   []*task.Task      // loads the workers had no room for; loop goroutine only
	batch     []*task.Task      // writes waiting for the next commit; loop goroutine only
	sent      int64             // groups handed to the committer; loop goroutine only
	committed atomic.Int64      // groups the committer has finished
	dispatch  timer.ReadyEntry
	sweep     timer.Timer // periodic sweep of expired records
	poll      timer.Timer // retry handing loads to workers that were all busy
	workers   sync.WaitGroup
}

// committing reports whether the committer is busy with a group. Loop goroutine only.
func (o *Outgoing) committing() bool { return o.sent > o.committed.Load() }

// NewOutgoing creates the stage; completions go to out (CachePrc's completion queue).
func NewOutgoing(cfg OutgoingConfig, store nameservice.Store, out *loop.Queue) (*Outgoing, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.NoGroupCommit {
		cfg.MaxBatch = 1
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1 << 14
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := &Outgoing{cfg: cfg, log: cfg.Logger.With("stage", "outgoing"), out: out, store: store,
		loads: make(chan *task.Task, cfg.Workers*4), commits: make(chan []*task.Task, 1)}
	o.dispatch.Fn = o.dispatchWork
	o.sweep.Fn = o.sweepExpired
	o.poll.Fn = o.dispatchWork
	var err error
	if o.in, err = loop.NewQueue("outgoing.requests", cfg.Queue); err != nil {
		return nil, err
	}
	o.loop, err = loop.New(loop.Config{Name: "outgoing", Stage: task.StageOutgoing, Logger: cfg.Logger,
		OnStart: func() { o.loop.After(&o.sweep, o.cfg.SweepInterval) },
		OnStop:  o.finish,
	})
	if err == nil {
		err = o.loop.AddQueue(o.in, o.request)
	}
	if err != nil {
		return nil, err
	}
	for range cfg.Workers {
		o.workers.Go(o.loadWorker)
	}
	o.workers.Go(o.committer)
	return o, nil
}

// Requests returns the queue CachePrc sends loads and writes to.
func (o *Outgoing) Requests() *loop.Queue { return o.in }

// Loop returns the stage's loop.
func (o *Outgoing) Loop() *loop.Loop { return o.loop }

func (o *Outgoing) request(t *task.Task) {
	switch {
	case t.Op == task.OpStore && t.Flags&task.FlagCommitted != 0:
		task.Put(t) // the committer is free: dispatchWork sends the next group
	case t.Op == task.OpStore:
		o.batch = append(o.batch, t)
	case t.Op == task.OpLoad:
		o.backlog = append(o.backlog, t)
	default:
		t.Fail(task.CodeInternal, fmt.Errorf("outgoing does not serve %s", t.Op))
		o.complete(t)
		return
	}
	o.loop.Ready().Add(&o.dispatch)
}

// dispatchWork runs at the end of the iteration: loads to idle workers, and the writes gathered
// so far to the committer if it is free.
func (o *Outgoing) dispatchWork() {
	for len(o.backlog) > 0 {
		select {
		case o.loads <- o.backlog[0]:
			o.backlog[0] = nil
			o.backlog = o.backlog[1:]
			continue
		default:
		}
		break // workers busy: their completions will wake us (via CachePrc's answers) later
	}
	if !o.committing() && len(o.batch) > 0 {
		n := min(len(o.batch), o.cfg.MaxBatch)
		group := make([]*task.Task, n)
		copy(group, o.batch)
		o.batch = append(o.batch[:0], o.batch[n:]...)
		o.sent++
		o.commits <- group // capacity 1 and the committer is idle: never blocks
	}
	if len(o.backlog) > 0 && !o.poll.Scheduled() {
		o.loop.After(&o.poll, time.Millisecond) // workers busy: try again soon
	}
}

func (o *Outgoing) loadWorker() {
	for t := range o.loads {
		start := time.Now()
		r, ok, err := o.store.Get(string(t.Key), start.UnixMilli())
		if o.cfg.Observer != nil {
			o.cfg.Observer.ObserveLoad(time.Since(start), err)
		}
		switch {
		case err != nil:
			o.log.Error("store load failed", "key", string(t.Key), "err", err)
			t.Fail(task.CodeUnavailable, err)
		case !ok:
			t.Code = task.CodeNotFound
		default:
			t.Value = append(t.Value[:0], r.Value...)
			t.Version, t.TTLms = r.Version, r.ExpireAt
		}
		o.complete(t)
	}
}

func (o *Outgoing) committer() {
	var writes []nameservice.Write
	for group := range o.commits {
		writes = writes[:0]
		for _, t := range group {
			writes = append(writes, nameservice.Write{
				Key: string(t.Key), Delete: t.Flags&task.FlagDelete != 0,
				Record: nameservice.Record{Value: t.Value, Version: t.Version, ExpireAt: t.TTLms},
			})
		}
		errs := o.commit(writes)
		for i, t := range group {
			switch err := errs[i]; {
			case err == nil:
				t.Version = writes[i].Record.Version // a store may number versions itself (etcd)
			case errors.Is(err, nameservice.ErrInvalid):
				t.Fail(task.CodeBadRequest, err)
			default:
				t.Fail(task.CodeUnavailable, err)
			}
			o.complete(t)
		}
		o.committed.Add(1)
		done := task.Get() // wake the loop: the committer is free
		done.Op, done.Flags = task.OpStore, task.FlagCommitted
		if o.in.Push(done) != nil {
			task.Put(done) // stopping (finish polls the counter) or full (the poll timer retries)
		}
	}
}

// commit commits one group and returns each write's outcome. One bad write never fails the
// others: a write the store refuses alone comes back with its own error, and if the whole group
// fails for any reason but the store being unreachable, its writes are committed one by one,
// so that only those that fail alone fail. Committer goroutine only.
func (o *Outgoing) commit(writes []nameservice.Write) []error {
	errs := make([]error, len(writes))
	err := o.storeCommit(writes)
	if err != nil && len(writes) > 1 && !errors.Is(err, nameservice.ErrUnavailable) {
		o.log.Warn("group commit failed; committing its writes one by one", "writes", len(writes), "err", err)
		for i := range writes {
			errs[i] = o.storeCommit(writes[i : i+1])
		}
		err = nil
	}
	for i := range writes {
		switch {
		case err != nil:
			errs[i] = err
		case writes[i].Err != nil:
			errs[i] = writes[i].Err
		}
		if errs[i] != nil && !errors.Is(errs[i], nameservice.ErrInvalid) {
			o.log.Error("store commit failed", "key", writes[i].Key, "err", errs[i])
		}
	}
	return errs
}

// storeCommit is one call of the store's Commit, told to the Observer.
func (o *Outgoing) storeCommit(writes []nameservice.Write) error {
	start := time.Now()
	err := o.store.Commit(writes)
	if o.cfg.Observer != nil {
		o.cfg.Observer.ObserveCommit(len(writes), time.Since(start), err)
	}
	return err
}

// Feed is a store with a change feed (nameservice.Etcd): every change by anyone, in order.
type Feed interface {
	Watch(ctx context.Context, after uint64, fn func(changes []nameservice.Change, resync bool))
	// Fresh reports whether the store is reachable and the feed has delivered every change
	// up to its present.
	Fresh(ctx context.Context) (bool, error)
}

// Follow starts following the store's change feed from after the given version, handing each
// change to CachePrc, until the stage stops. Only for a store that is a Feed.
func (o *Outgoing) Follow(after uint64) {
	f, ok := o.store.(Feed)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.stopFeed = cancel
	o.workers.Go(func() {
		f.Watch(ctx, after, func(changes []nameservice.Change, resync bool) {
			if resync {
				t := task.Get()
				t.Op, t.Flags = task.OpChanged, task.FlagResync
				o.complete(t)
			}
			for _, ch := range changes {
				t := task.Get()
				t.Op, t.Version, t.TTLms = task.OpChanged, ch.Record.Version, ch.Record.ExpireAt
				t.Key = append(t.Key, ch.Key...)
				if ch.Delete {
					t.Flags = task.FlagDelete
				} else {
					t.Value = append(t.Value, ch.Record.Value...)
				}
				o.complete(t)
			}
		})
	})
	o.workers.Go(func() { o.probeFeed(ctx, f) })
}

// probeFeed tells CachePrc whenever the feed's state changes: complete (cached copies are as
// new as the store) or not (the store is unreachable or the feed lags: cached copies may be
// stale). It asks every ProbeInterval.
func (o *Outgoing) probeFeed(ctx context.Context, f Feed) {
	up := true // the daemon started with the store reachable
	tick := time.NewTicker(o.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fresh, err := f.Fresh(ctx)
		if fresh == up || ctx.Err() != nil {
			continue
		}
		up = fresh
		t := task.Get()
		t.Op, t.Flags = task.OpChanged, task.FlagFeedState
		if up {
			o.log.Info("store reachable and change feed complete: cached copies are current again")
		} else {
			o.log.Warn("store unreachable or change feed behind: cached copies may be stale", "err", err)
			t.Code = task.CodeUnavailable
		}
		o.complete(t)
	}
}

// complete hands a finished task back to CachePrc. Called from worker goroutines, which may
// wait (unlike a loop) while CachePrc's queue is full.
func (o *Outgoing) complete(t *task.Task) { o.pushBlocking(o.out, t) }

func (o *Outgoing) pushBlocking(q *loop.Queue, t *task.Task) {
	backoff := 10 * time.Microsecond
	for {
		err := q.Push(t)
		if err == nil {
			return
		}
		if errors.Is(err, loop.ErrQueueClosed) {
			o.log.Error("result dropped: queue closed", "queue", q.Name(), "op", t.Op, "key", string(t.Key))
			task.Put(t)
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// sweepExpired deletes expired records from the store now and then, on a worker-like goroutine
// so the loop never waits for the disk.
func (o *Outgoing) sweepExpired() {
	go func() {
		n, err := o.store.SweepExpired(time.Now().UnixMilli(), 10_000)
		if err != nil {
			o.log.Warn("sweeping expired records", "err", err)
		} else if n > 0 {
			o.log.Debug("swept expired records", "n", n)
		}
	}()
	o.loop.After(&o.sweep, o.cfg.SweepInterval)
}

// finish runs when the loop stops: commit what is queued, then stop the goroutines.
func (o *Outgoing) finish() {
	for o.committing() || len(o.batch) > 0 || len(o.backlog) > 0 {
		if o.committing() {
			time.Sleep(100 * time.Microsecond) // the loop is done iterating: waiting is allowed now
			continue
		}
		o.dispatchWork()
		if len(o.backlog) > 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(o.loads)
	close(o.commits)
	if o.stopFeed != nil {
		o.stopFeed()
	}
	o.workers.Wait()
}
