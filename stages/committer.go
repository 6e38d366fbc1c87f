package stages

import (
	"errors"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// The write path: CachePrc -> committer -> CachePrc, with no stage loop between them.
//
// CachePrc applies writes to its keys in memory (cacheprc_write.go) and, at the end of a loop
// iteration when no commit is in flight, gathers every key with changes not yet sent into one
// commitBatch: one write per key, its newest value. It hands the batch to the committer
// goroutine through a channel that holds one batch, and since at most one batch is in flight
// the send never waits. The committer commits the batch (one store Commit: one transaction, one
// fsync) and hands it back through CachePrc's completions queue. Meanwhile CachePrc gathers
// the next batch: everything written during a commit rides the next one, as bbolt's Batch and
// Redis's event loop do.
//
// Ownership: a commitBatch belongs to CachePrc's loop, except between CommitPort.submit and
// its completion, when it belongs to the committer goroutine. The committer goroutine is
// started and stopped by Outgoing (it is Outgoing's connection to the store for writes) and
// touches nothing but the batch it holds, the store, the Observer and CachePrc's completions
// queue.

// commitBatch is one group commit: at most one write per key.
type commitBatch struct {
	writes []nameservice.Write
	slots  []uint32 // CachePrc's slot of each write
	errs   []error  // each write's outcome, set by the committer
	buf    []byte   // the values, back to back: writes[i].Record.Value points into it
	task   *task.Task
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

// seal points every write at its final bytes (buf may have moved while it grew).
func (b *commitBatch) seal() {
	off := 0
	for i := range b.writes {
		n := len(b.writes[i].Record.Value)
		b.writes[i].Record.Value = b.buf[off : off+n : off+n]
		off += n
	}
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

// CommitPort is how CachePrc hands a group commit to Outgoing's committer goroutine.
type CommitPort struct {
	ch chan *task.Task // holds one: CachePrc never has more than one commit in flight
	// MaxWrites bounds the writes in one commit (OutgoingConfig.MaxBatch).
	MaxWrites int
	// Serial: a key has at most one change at the store at a time, and requests that would
	// change it wait for it (-no-group-commit; and a store that numbers versions itself, etcd,
	// whose versions a later write of the same key must not get ahead of).
	Serial bool
}

// submit hands t (its Ctx a *commitBatch) to the committer. CachePrc's loop only; it never
// waits, since the channel holds the one commit in flight. It reports false if the committer
// has stopped.
func (p *CommitPort) submit(t *task.Task) bool {
	select {
	case p.ch <- t:
		return true
	default:
		return false
	}
}

// committer commits the batches CachePrc submits until the channel closes. Its own goroutine.
func (o *Outgoing) committer() {
	for t := range o.port.ch {
		b := t.Ctx.(*commitBatch)
		b.seal()
		b.errs = append(b.errs[:0], o.commit(b.writes)...)
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
