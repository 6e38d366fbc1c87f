package stages

import (
	"fmt"
	"math"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/task"
)

// Writes to a busy key ride together (PROTOCOL.md, "Writes and what readers see").
//
// Every request that may change a key (set, add, replace, cas, delete, incr, touch, exec) is
// applied at once, in arrival order, to the key's head: the value as every pending request
// before it left it. A request that changes the head gets its own version and becomes a pending
// change; one that changes nothing (a failed compare, a read-only exec) is answered at once if
// nothing is pending on the key, and otherwise waits as a pending op too, since its answer was
// computed from changes that are not durable yet. The durable value, the one in the table, is
// what readers (get, mget) see and what subscribers were told; it changes only when a commit
// comes back.
//
// At the end of a loop iteration, every key with unsent changes goes into the open group commit
// (committer.go) with its head: one write per key however many changes it holds; a key whose
// write is at the committer waits for it to come back. When a commit comes back, for each key
// in it, in order:
//
//   - success: the head that was sent becomes the durable value; each op it carried is pushed
//     to subscribers (changes) and answered, in arrival order, then the ops behind them that
//     change nothing; the ops after the next unsent change wait for the next commit;
//   - failure: every op it carried fails with the store's error and every op applied after
//     them fails too (each was computed from a value the store never took); the head goes back
//     to the durable value, and no reader or subscriber ever saw the failed one.
//
// A key holds at most MaxPending ops and MaxPendingBytes of their values; a request beyond is
// answered busy. In serial mode (CommitPort.Serial) a key has at most one pending op, and
// requests that would change it wait behind it, as they did before writes rode together.

// pendingOp is a request applied to its key's head and not answered yet.
type pendingOp struct {
	t       *task.Task // the request, its reply in it; nil once answered (timed out)
	version uint64     // the version it gave the key (a touch keeps the one it found)
	change  bool       // it changed the key: it rides a commit and is pushed to subscribers
	del     bool       // the change is a delete
	keep    bool       // t.Value holds the new value (set, add, replace, cas, incr): its push carries it
	bytes   int        // what t holds, counted in inflight.bytes
	expires int64      // when t is answered timeout if still pending (unix ms): StoreTimeout after it came
}

// headSource says where a key's head value is.
type headSource uint8

const (
	headDurable headSource = iota // the table's value (no change, or only touches, pending)
	headOwn                       // inflight.head.value
	headLive                      // the key's live value (cacheprc_live.go)
)

// headState is a key as its pending ops left it. Valid while the key has ops.
type headState struct {
	present  bool
	version  uint64
	expireAt int64
	src      headSource
	value    []byte // when src is headOwn
}

// view is what a request is applied to: the head if the key has pending ops, else the durable
// entry. A present value past its deadline is absent.
type view struct {
	present  bool
	version  uint64
	expireAt int64
}

// viewOf returns slot i's head; now expires it. With nothing pending, a durable value past its
// deadline is expired first (and subscribers told), as a read does.
func (c *CachePrc) viewOf(i uint32, now int64) view {
	if fl := c.flights[i]; fl != nil && len(fl.ops) > 0 {
		h := &fl.head
		return view{present: h.present && (h.expireAt == 0 || h.expireAt > now), version: h.version, expireAt: h.expireAt}
	}
	s := c.tab.slot(i)
	if s.state == statePresent && s.expireAt != 0 && s.expireAt <= now {
		c.expire(i)
	}
	return view{present: s.state == statePresent, version: s.version, expireAt: s.expireAt}
}

// headValue returns slot i's head value (the durable one if nothing is pending). It is valid
// until the head changes.
func (c *CachePrc) headValue(i uint32) []byte {
	if fl := c.flights[i]; fl != nil && len(fl.ops) > 0 {
		switch fl.head.src {
		case headOwn:
			return fl.head.value
		case headLive:
			return c.encodeLive(i)
		}
	}
	return c.tab.valueOf(i)
}

// serial reports whether a key may have only one pending request (CommitPort.Serial).
func (c *CachePrc) serial() bool { return c.commits.Serial }

// hasDirty reports whether any key has changes waiting for a commit.
func (c *CachePrc) hasDirty() bool {
	for _, i := range c.dirty {
		if fl := c.flights[i]; fl != nil && fl.dirty {
			return true
		}
	}
	return false
}

// newHead is a new head for a key, made by a request.
type newHead struct {
	del      bool
	touch    bool   // only the deadline changes: the value and version stay
	live     bool   // the new value is the key's live value (changed in place)
	value    []byte // the new value, copied (not for del, touch or live)
	expireAt int64
	keep     bool // the request's Value holds the new value, for its push
}

// applyChange makes ch slot i's head on behalf of t, which waits as a pending op, and returns
// the version it gave the key.
func (c *CachePrc) applyChange(i uint32, t *task.Task, ch newHead) uint64 {
	fl := c.begin(i)
	h := &fl.head
	if !ch.touch {
		c.nextVersion++
		h.version = c.nextVersion
	}
	h.present, h.expireAt = !ch.del, ch.expireAt
	switch {
	case ch.live:
		h.src = headLive
	case ch.del:
		h.src, h.value = headOwn, h.value[:0]
		c.dropLive(i)
	case !ch.touch:
		h.src, h.value = headOwn, append(h.value[:0], ch.value...)
		c.dropLive(i)
	}
	c.pend(i, fl, pendingOp{t: t, version: h.version, change: true, del: ch.del, keep: ch.keep})
	c.markDirty(i, fl)
	return h.version
}

// begin returns slot i's in-flight record with its head set, from the durable entry if the key
// had nothing pending.
func (c *CachePrc) begin(i uint32) *inflight {
	fl := c.flight(i)
	if len(fl.ops) == 0 {
		s := c.tab.slot(i)
		fl.head = headState{present: s.state == statePresent, version: s.version, expireAt: s.expireAt,
			src: headDurable, value: fl.head.value[:0]}
	}
	return fl
}

// pend adds op to slot i's pending ops.
func (c *CachePrc) pend(i uint32, fl *inflight, op pendingOp) {
	op.bytes = len(op.t.Value)
	op.expires = c.nowMs() + c.cfg.StoreTimeout.Milliseconds()
	if !c.commitTimer.Scheduled() {
		c.loop.After(&c.commitTimer, c.cfg.StoreTimeout)
	}
	fl.ops = append(fl.ops, op)
	fl.bytes += op.bytes
	if op.t == c.executing {
		c.executing = nil // the pending ops answer it
	}
}

// respond answers t, whose outcome changes nothing, in its turn: now if slot i has nothing
// pending, else once every change before it is durable.
func (c *CachePrc) respond(i uint32, t *task.Task) {
	fl := c.flights[i]
	if fl == nil || len(fl.ops) == 0 {
		c.reply(t)
		return
	}
	c.pend(i, fl, pendingOp{t: t, version: fl.head.version})
}

// refuse answers t with an error in its turn (respond).
func (c *CachePrc) refuse(i uint32, t *task.Task, code task.Code, err error) {
	t.Fail(code, err)
	t.Value = t.Value[:0]
	c.respond(i, t)
}

// markDirty lists slot i for the next commit and makes sure one will be gathered.
func (c *CachePrc) markDirty(i uint32, fl *inflight) {
	if !fl.dirty {
		fl.dirty = true
		c.dirty = append(c.dirty, i)
	}
	c.loop.Ready().Add(&c.flushEntry)
}

// flush puts the heads of the keys with unsent changes into the open batch and publishes it
// for the committer (committer.go). It runs at the end of a loop iteration, so that everything
// the iteration wrote rides one commit, and when a commit comes back.
func (c *CachePrc) flush() {
	if len(c.dirty) == 0 || c.storeGone {
		return
	}
	b := c.commits.takeBack()
	if b == nil {
		c.open = nil // the committer took it (or none was open)
		b = c.newBatch()
	}
	kept := c.dirty[:0]
	for _, i := range c.dirty {
		fl := c.flights[i]
		switch {
		case fl == nil || !fl.dirty:
			continue // its changes failed meanwhile
		case fl.batch != nil && fl.batch != b, fl.batch == nil && len(b.writes) >= c.commits.MaxWrites:
			kept = append(kept, i) // its last write is at the store, or the batch is full: later
			continue
		}
		c.putHead(b, i, fl)
	}
	clear(c.dirty[len(kept):])
	c.dirty = kept
	if len(b.writes) == 0 {
		c.freeBatches = append(c.freeBatches, b)
		return
	}
	if b != c.open {
		c.open = b
		c.inflight++
	}
	c.commits.publish(b)
}

// putHead writes slot i's head into b, replacing the key's write if b has one.
func (c *CachePrc) putHead(b *commitBatch, i uint32, fl *inflight) {
	fl.dirty, fl.sent = false, len(fl.ops)
	h := &fl.head
	live := h.src == headLive && h.present
	if fl.batch == b {
		if live {
			b.setEncoded(fl.pos, c.liveValue(i), h.version, h.expireAt)
		} else {
			b.set(fl.pos, !h.present, c.headValue(i), h.version, h.expireAt)
		}
		return
	}
	fl.batch, fl.pos = b, len(b.writes)
	c.stats.stores.Add(1)
	if live {
		b.addEncoded(i, c.tab.keyOf(i), c.liveValue(i), h.version, h.expireAt)
	} else {
		b.add(i, c.tab.keyOf(i), !h.present, c.headValue(i), h.version, h.expireAt)
	}
}

func (c *CachePrc) newBatch() *commitBatch {
	if n := len(c.freeBatches); n > 0 {
		b := c.freeBatches[n-1]
		c.freeBatches = c.freeBatches[:n-1]
		return b
	}
	return &commitBatch{}
}

// committed handles a group commit coming back from the committer.
func (c *CachePrc) committed(b *commitBatch) {
	c.inflight--
	c.commitLate = false
	c.applying, c.batchNext = b, 0
	c.applyBatch()
}

// applyBatch applies each key's outcome, in the order the keys were gathered, then sends the
// next commit. After a panic, onPanic resets the key it was on and calls it again for the rest.
func (c *CachePrc) applyBatch() {
	b := c.applying
	for c.batchNext < len(b.slots) {
		k := c.batchNext
		c.batchNext++
		i := b.slots[k]
		fl := c.flights[i]
		if fl == nil || fl.batch != b {
			continue
		}
		fl.batch = nil
		if err := b.errs[k]; err != nil {
			c.commitFailed(i, fl, commitCode(err), err)
		} else {
			c.commitDone(i, fl, &b.writes[k])
		}
		c.afterCommit(i)
	}
	c.applying = nil
	b.reset()
	c.freeBatches = append(c.freeBatches, b)
	c.flush()
	c.evict()
	c.closeStoreIfDone()
}

// commitPanicked resets the key whose commit outcome was being applied when a handler
// panicked: its requests are answered internal and its entry dropped (the store has the truth),
// then the rest of the batch is applied.
func (c *CachePrc) commitPanicked() {
	if c.applying == nil || c.batchNext == 0 {
		return // the panic came before the batch was looked at, or after it was done
	}
	i := c.applying.slots[c.batchNext-1]
	if fl := c.flights[i]; fl != nil {
		for j := range fl.ops {
			if t := fl.ops[j].t; t != nil {
				fl.ops[j].t = nil
				c.fail(t, task.CodeInternal, errHandlerPanicked)
			}
		}
		fl.dirty, fl.batch = false, nil
		c.dropOps(fl, len(fl.ops))
		c.failAll(i, task.CodeInternal, errHandlerPanicked)
		c.settle(i)
		if c.flights[i] == nil {
			c.removeSlot(i)
		}
	}
	c.applyBatch()
}

// commitDone applies w, a write the store made durable, to slot i: the durable value, then
// each op it carried, pushed and answered in order.
func (c *CachePrc) commitDone(i uint32, fl *inflight, w *nameservice.Write) {
	if w.Delete {
		c.setAbsent(i, c.nowMs())
		c.tab.setDeleted(i, w.Record.Version)
	} else {
		c.setValue(i, w.Record.Value, w.Record.Version, w.Record.ExpireAt)
	}
	last := fl.sent - 1
	for last > 0 && !fl.ops[last].change {
		last--
	}
	if w.Record.Version != fl.ops[last].version && fl.ops[last].change {
		fl.ops[last].version = w.Record.Version // a store that numbers versions itself (etcd)
	}
	for j := 0; j < fl.sent; j++ {
		op := &fl.ops[j]
		var value []byte
		switch {
		case j == last:
			value = w.Record.Value
		case op.keep && op.t != nil:
			value = op.t.Value
		}
		c.committedOp(c.tab.keyOf(i), op, value, j == last || op.keep && op.t != nil)
	}
	n := fl.sent
	for n < len(fl.ops) && !fl.ops[n].change {
		c.committedOp(nil, &fl.ops[n], nil, false) // changed nothing, after durable changes only
		n++
	}
	c.dropOps(fl, n)
}

// committedOp pushes a durable op's change to subscribers and answers its request.
func (c *CachePrc) committedOp(key []byte, op *pendingOp, value []byte, hasValue bool) {
	if op.change {
		switch {
		case op.del:
			c.stats.deletes.Add(1)
			c.emit(key, op.version, task.PushDelete, nil)
		case hasValue:
			c.stats.sets.Add(1)
			c.emit(key, op.version, task.PushSet, value)
		default:
			c.stats.sets.Add(1)
			c.emit(key, op.version, task.PushSet|task.PushNoValue, nil)
		}
	}
	t := op.t
	if t == nil {
		return // answered already (timeout)
	}
	op.t = nil
	if op.change {
		t.Version = op.version
		switch t.Op {
		case task.OpExec, task.OpIncr: // the result, or the counter's value: set when applied
		default:
			t.Value = t.Value[:0]
		}
	}
	c.reply(t)
}

// commitFailed fails every pending op of slot i: those the failed commit carried with its
// error, the later ones because they were computed from what it carried. The key is back at
// its durable value.
func (c *CachePrc) commitFailed(i uint32, fl *inflight, code task.Code, err error) {
	later := fmt.Errorf("not applied: it came after a write to this key that the store failed: %w", err)
	for j := range fl.ops {
		if t := fl.ops[j].t; t != nil {
			fl.ops[j].t = nil
			if j < fl.sent {
				c.fail(t, code, err)
			} else {
				c.fail(t, task.CodeUnavailable, later)
			}
		}
	}
	fl.dirty = false
	c.dropOps(fl, len(fl.ops))
	c.dropLive(i) // it was the failed head
}

// dropUnsent fails slot i's ops that no commit carries yet (with code and err) and puts its head
// back where the commit in flight leaves it, or at the durable value. For a key whose head can
// no longer be trusted (a panic while applying a request).
func (c *CachePrc) dropUnsent(i uint32, fl *inflight, code task.Code, err error) {
	for j := fl.sent; j < len(fl.ops); j++ {
		if t := fl.ops[j].t; t != nil {
			fl.ops[j].t = nil
			c.fail(t, code, err)
		}
		fl.bytes -= fl.ops[j].bytes
	}
	clear(fl.ops[fl.sent:])
	fl.ops, fl.dirty = fl.ops[:fl.sent], false
	c.dropLive(i)
	if fl.sent == 0 || fl.batch == nil {
		return // nothing pending: the head is the durable value again
	}
	// The head as the write being committed leaves it (its Version is not read: a store that
	// numbers versions may be setting it).
	w := &fl.batch.writes[fl.pos]
	version := fl.head.version
	for j := fl.sent - 1; j >= 0; j-- {
		if fl.ops[j].change {
			version = fl.ops[j].version
			break
		}
	}
	fl.head = headState{present: !w.Delete, version: version, expireAt: w.Record.ExpireAt,
		src: headOwn, value: append(fl.head.value[:0], w.Record.Value...)}
}

// dropOps forgets slot i's first n ops (answered).
func (c *CachePrc) dropOps(fl *inflight, n int) {
	for j := range n {
		fl.bytes -= fl.ops[j].bytes
	}
	m := copy(fl.ops, fl.ops[n:])
	clear(fl.ops[m:])
	fl.ops, fl.sent = fl.ops[:m], 0
}

// afterCommit goes on with slot i once its commit is over: requests that waited for its
// durable value run, a key whose first write failed is loaded for those waiting on it or
// forgotten, and the in-flight record goes back to the pool if nothing is left.
func (c *CachePrc) afterCommit(i uint32) {
	fl := c.flights[i]
	if len(fl.ops) > 0 {
		c.resume(i)
		return
	}
	if c.tab.slot(i).state == stateLoading { // a blind set that failed: the key is still unknown
		if len(fl.waiters) > 0 {
			c.loadFor(i)
			return
		}
		c.settle(i)
		if c.flights[i] == nil {
			c.removeSlot(i)
		}
		return
	}
	if fl.foreign > c.tab.slot(i).version {
		c.foreignAfter(i, fl)
		if c.flights[i] == nil {
			return
		}
	}
	c.resume(i)
}

// commitTimedOut answers "timeout" to every pending request that has waited StoreTimeout for
// the store, and sets itself for the next one to. The requests stay pending: if the store
// answers later, their changes apply then (the writes may have committed), but no reply goes
// out twice.
func (c *CachePrc) commitTimedOut() {
	now, next, late := c.nowMs(), int64(math.MaxInt64), 0
	for _, fl := range c.flights {
		for j := range fl.ops {
			op := &fl.ops[j]
			if op.t == nil {
				continue
			}
			if op.expires > now {
				next = min(next, op.expires) // a key's ops came in order: the rest expire later
				break
			}
			t := op.t
			op.t = nil
			c.fail(t, task.CodeTimeout, errStoreTimeout)
			late++
		}
	}
	if late > 0 {
		c.stats.timeouts.Add(uint64(late))
		if !c.commitLate {
			c.commitLate = true
			c.log.Warn("store timed out", "op", "commit", "requests", late, "batches", c.inflight, "after", c.cfg.StoreTimeout)
		}
	}
	if next != math.MaxInt64 {
		c.loop.After(&c.commitTimer, time.Duration(next-now)*time.Millisecond)
	}
}
