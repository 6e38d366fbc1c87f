package stages

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// The write path: CachePrc -> committer -> CachePrc, with no stage loop between them.
//
// CachePrc applies writes to its keys in memory (cacheprc_write.go) and, at the end of each
// loop iteration that changed keys, puts every changed key's newest value into the open batch:
// one write per key, however many changes it holds. It publishes the open batch in the
// CommitPort's one slot (an atomic pointer) and signals the committer goroutine. Whenever the
// committer is free it takes the batch in the slot, everything queued at once, commits it (one
// store Commit: one transaction, one fsync) and hands it back through CachePrc's completions
// queue, then takes the next. Until the committer has taken it, CachePrc may take the open
// batch back out of the slot (an atomic swap) to add the writes of the next iteration, so a
// commit never waits for CachePrc and everything written while one commits rides the next, as
// bbolt's Batch and Redis's event loop do. A key whose write is being committed stays out of
// the open batch until that commit is back, so that a failed commit can take back what was
// built on it.
//
// Ownership: a commitBatch belongs to CachePrc's loop while it is open and not in the slot, and
// from its completion on; in the slot, whoever swaps it out owns it; once the committer has it,
// the committer goroutine, until it pushes the completion. The committer goroutine is started
// and stopped by Outgoing (it is Outgoing's connection to the store for writes) and touches
// nothing but the batch it holds, the store, the Observer and CachePrc's completions queue.

// commitBatch is one group commit: at most one write per key.
type commitBatch struct {
	writes []nameservice.Write
	slots  []uint32 // CachePrc's slot of each write
	errs   []error  // each write's outcome, set by the committer
	buf    []byte   // the values: writes[i].Record.Value points into it (or an older array of it)
}

// set replaces write k's value (its key's head changed while the batch was open).
func (b *commitBatch) set(k int, del bool, value []byte, version uint64, expireAt int64) {
	start := len(b.buf)
	b.buf = append(b.buf, value...)
	b.writes[k].Delete = del
	b.writes[k].Record = nameservice.Record{Value: b.buf[start:len(b.buf):len(b.buf)], Version: version, ExpireAt: expireAt}
}

// setEncoded replaces write k's value with v's encoding.
func (b *commitBatch) setEncoded(k int, v processor.Value, version uint64, expireAt int64) {
	start := len(b.buf)
	b.buf = v.AppendEncoded(b.buf)
	b.writes[k].Delete = false
	b.writes[k].Record = nameservice.Record{Value: b.buf[start:len(b.buf):len(b.buf)], Version: version, ExpireAt: expireAt}
}

// add appends a write of key; value is copied (it may change once the batch has left).
func (b *commitBatch) add(slot uint32, key []byte, del bool, value []byte, version uint64, expireAt int64) {
	start := len(b.buf)
	b.buf = append(b.buf, value...)
	b.slots = append(b.slots, slot)
	b.writes = append(b.writes, nameservice.Write{Key: string(key), Delete: del,
		Record: nameservice.Record{Version: version, ExpireAt: expireAt}})
	b.writes[len(b.writes)-1].Record.Value = b.buf[start:len(b.buf):len(b.buf)]
}

// addEncoded appends a write of key whose value is v's encoding, written straight into the
// batch.
func (b *commitBatch) addEncoded(slot uint32, key []byte, v processor.Value, version uint64, expireAt int64) {
	start := len(b.buf)
	b.buf = v.AppendEncoded(b.buf)
	b.slots = append(b.slots, slot)
	b.writes = append(b.writes, nameservice.Write{Key: string(key),
		Record: nameservice.Record{Value: b.buf[start:len(b.buf):len(b.buf)], Version: version, ExpireAt: expireAt}})
}

// reset empties b for the next batch, keeping its buffers unless they grew large.
func (b *commitBatch) reset() {
	clear(b.writes)
	b.writes, b.slots, b.errs = b.writes[:0], b.slots[:0], b.errs[:0]
	b.buf = b.buf[:0]
	if cap(b.buf) > 4<<20 {
		b.buf = nil
	}
}

// CommitPort is how CachePrc hands group commits to Outgoing's committer goroutine.
type CommitPort struct {
	next atomic.Pointer[commitBatch] // the open batch, published: the committer takes it when free
	wake chan struct{}               // one signal: next may hold a batch
	// committing is how many writes the committer holds: taken from the slot, not yet
	// committed (Committing). Written by the committer goroutine, read by anyone.
	committing atomic.Int64
	stop       chan struct{} // closed when Outgoing finishes
	// MaxWrites bounds the writes in one commit (OutgoingConfig.MaxBatch).
	MaxWrites int
	// Serial: a key has at most one change at the store at a time, and requests that would
	// change it wait for it (-no-group-commit; and a store that numbers versions itself, etcd,
	// whose versions a later write of the same key must not get ahead of).
	Serial bool
}

func newCommitPort(maxWrites int, serial bool) *CommitPort {
	return &CommitPort{wake: make(chan struct{}, 1), stop: make(chan struct{}), MaxWrites: maxWrites, Serial: serial}
}

// publish puts b in the slot (which CachePrc has emptied with takeBack) and wakes the
// committer. CachePrc's loop only; it never waits.
func (p *CommitPort) publish(b *commitBatch) {
	p.next.Store(b)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Committing returns how many writes the store is committing now: those of the commit under
// way, 0 between commits. Safe for concurrent use.
func (p *CommitPort) Committing() int64 { return p.committing.Load() }

// takeBack empties the slot and returns the batch it held: nil if the committer took it.
// CachePrc's loop only.
func (p *CommitPort) takeBack() *commitBatch { return p.next.Swap(nil) }

// committer commits the batches CachePrc publishes, each as soon as it is free, until Outgoing
// finishes. Its own goroutine, locked to an OS thread of its own (never unlocked: the thread
// ends with it). Unlocked, it migrated between threads on every commit: woken from its channel
// onto whichever thread Go's scheduler had free, then parked in the store's fsync, whose
// blocking system call made the runtime hand that thread's P to another thread (sysmon). Locked,
// it sleeps in its channel receive and in fsync on the same thread, and a commit costs that
// thread's one wake-up (BENCHMARKS.md, "Threads": where the committer's CPU goes).
func (o *Outgoing) committer() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	o.log.Debug("committer started", "tid", tid)
	p := o.port
	for {
		b := p.next.Swap(nil)
		if b == nil {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return // CachePrc had nothing in flight when it closed Outgoing's queue
			}
		}
		p.committing.Store(int64(len(b.writes)))
		b.errs = append(b.errs[:0], o.commit(b.writes)...)
		p.committing.Store(0)
		committedOn()
		t := task.Get()
		t.Op, t.Ctx = task.OpStore, b
		o.complete(t)
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

// commitCode is the reply code of a write the store failed with err.
func commitCode(err error) task.Code {
	if errors.Is(err, nameservice.ErrInvalid) {
		return task.CodeBadRequest
	}
	return task.CodeUnavailable
}
