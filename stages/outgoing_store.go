package stages

import (
	"context"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// Outgoing's goroutines: they may block on the store (that is what they are for) and on
// CachePrc's full completion queue; they share nothing with the loop but the channels.

// loadWorker serves loads until the loads channel closes.
func (o *Outgoing) loadWorker() {
	for t := range o.loads {
		if t.Op == task.OpScan {
			o.scanStep(t)
			o.complete(t)
			continue
		}
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
			t.Version, t.ExpireAt = r.Version, r.ExpireAt
		}
		o.complete(t)
	}
}

// sweeper deletes expired records from the store every SweepInterval, one sweep at a time,
// until the stage finishes.
func (o *Outgoing) sweeper() {
	tick := time.NewTicker(o.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-tick.C:
		}
		n, err := o.store.SweepExpired(time.Now().UnixMilli(), 10_000)
		if err != nil {
			o.log.Warn("sweeping expired records", "err", err)
		} else if n > 0 {
			o.log.Debug("swept expired records", "n", n)
		}
	}
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
	ctx := o.ctx
	o.workers.Go(func() {
		f.Watch(ctx, after, func(changes []nameservice.Change, resync bool) {
			if resync {
				t := task.Get()
				t.Op = task.OpFeedResync
				o.complete(t)
			}
			for _, ch := range changes {
				t := task.Get()
				t.Op, t.Version, t.ExpireAt, t.Delete = task.OpChanged, ch.Record.Version, ch.Record.ExpireAt, ch.Delete
				t.Key = append(t.Key, ch.Key...)
				if !ch.Delete {
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
		t.Op = task.OpFeedState
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
func (o *Outgoing) complete(t *task.Task) {
	if err := loop.PushWait(context.Background(), o.out, t); err != nil {
		o.log.Error("result dropped", "queue", o.out.Name(), "op", t.Op, "key", string(t.Key), "err", err)
		task.Put(t)
	}
}
