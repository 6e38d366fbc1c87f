package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/task"
)

var errStoreTimeout = errors.New("the store did not answer in time")

// ---- the table, with the stage's bookkeeping: memory stats, the expiry timer, eviction ----

func (c *CachePrc) newSlot(key []byte) uint32 {
	i := c.tab.insert(key)
	c.account()
	return i
}

// removeSlot forgets slot i entirely. It must have nothing in flight.
func (c *CachePrc) removeSlot(i uint32) {
	c.tab.remove(i)
	c.account()
}

// setValue stores a value in slot i (which has its operation in flight, so eviction, which runs
// here before anyone is answered, never takes it).
func (c *CachePrc) setValue(i uint32, value []byte, version uint64, expireAt int64) {
	if c.tab.setValue(i, value, version, expireAt) {
		c.armSweep()
	}
	c.account()
	c.evict()
}

// setAbsent remembers slot i's key as absent for the negative TTL.
func (c *CachePrc) setAbsent(i uint32, now int64) {
	if c.tab.setAbsent(i, now+c.cfg.NegativeTTL.Milliseconds()) {
		c.armSweep()
	}
	c.account()
}

func (c *CachePrc) account() {
	c.stats.items.Store(c.tab.items)
	c.stats.bytes.Store(c.tab.bytes())
}

// ---- operations in flight ----

// flight returns slot i's in-flight record, taking one from the pool if it has none.
func (c *CachePrc) flight(i uint32) *inflight {
	if fl := c.flights[i]; fl != nil {
		return fl
	}
	var fl *inflight
	if n := len(c.freeFlights); n > 0 {
		fl = c.freeFlights[n-1]
		c.freeFlights = c.freeFlights[:n-1]
	} else {
		fl = &inflight{}
		fl.timeout.Fn = func() { c.timedOut(fl) } // once per pooled record, not per item
	}
	fl.slot = i
	c.flights[i] = fl
	return fl
}

// settle returns slot i's in-flight record to the pool once nothing is in flight or waiting.
func (c *CachePrc) settle(i uint32) {
	fl := c.flights[i]
	if fl == nil || fl.busy != nil || len(fl.waiters) > 0 {
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.owner, fl.waiters, fl.late, fl.foreign, fl.foreignDelete = nil, fl.waiters[:0], false, 0, false
	delete(c.flights, i)
	c.freeFlights = append(c.freeFlights, fl)
}

// load asks Outgoing for slot i's key on behalf of t; the waiters are answered when it comes back.
func (c *CachePrc) load(i uint32, t *task.Task) {
	c.stats.misses.Add(1)
	fl := c.flight(i)
	fl.waiters = append(fl.waiters, t)
	lt := task.Get()
	lt.Op = task.OpLoad
	lt.Key = append(lt.Key, c.tab.key(c.tab.slot(i))...)
	if !c.send(i, lt, nil) {
		c.failAll(i, task.CodeBusy, errors.New("store queue full"))
		c.settle(i)
		c.removeSlot(i)
	}
}

// write sends a new value (or a delete) for slot i to Outgoing on behalf of the request t. It
// reports false if it could not (t is then answered busy).
func (c *CachePrc) write(i uint32, t *task.Task, value []byte, expireAt int64, del bool) bool {
	s := c.tab.slot(i)
	st := task.Get()
	st.Op = task.OpStore
	st.Key = append(st.Key, c.tab.key(s)...)
	st.Value = append(st.Value, value...)
	st.ExpireAt, st.Delete = expireAt, del
	st.Version = c.nextVersion + 1
	if t.Op == task.OpTouch {
		st.Version = s.version // a new deadline is not a new value
	}
	version := st.Version // st belongs to Outgoing once sent
	if !c.send(i, st, t) {
		c.fail(t, task.CodeBusy, errors.New("store queue full"))
		c.settle(i)
		return false
	}
	if version > c.nextVersion {
		c.nextVersion = version
	}
	return true
}

// send hands a load or store to Outgoing and arms the time-out. It reports false (and frees
// st) if Outgoing's queue is full.
func (c *CachePrc) send(i uint32, st, owner *task.Task) bool {
	fl := c.flight(i)
	if err := c.toStore.Push(st); err != nil {
		task.Put(st)
		return false
	}
	if st.Op == task.OpLoad {
		c.stats.loads.Add(1)
	} else {
		c.stats.stores.Add(1)
	}
	fl.busy, fl.owner = st, owner
	c.inflight++
	c.loop.After(&fl.timeout, c.cfg.StoreTimeout)
	return true
}

// completion handles a load or store coming back from Outgoing.
func (c *CachePrc) completion(st *task.Task) {
	c.complete(st)
	task.Put(st) // not deferred: after a panic, onPanic still reads st
}

func (c *CachePrc) complete(st *task.Task) {
	if st.Op == task.OpChanged || st.Op == task.OpFeedState || st.Op == task.OpFeedResync {
		c.changed(st)
		return
	}
	c.inflight--
	defer c.closeStoreIfDone() // stopping: the last thing in flight closes Outgoing's queue
	i := c.tab.lookup(st.Key)
	fl := c.flights[i]
	if i == 0 || fl == nil || fl.busy != st {
		c.log.Error("completion for no request in flight", "key", string(st.Key), "op", st.Op)
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	owner := fl.owner // nil for a load, or if a time-out answered it already
	fl.busy, fl.late, fl.owner = nil, false, nil
	switch {
	case st.Op == task.OpLoad && (st.Code == task.CodeOK || st.Code == task.CodeNotFound):
		c.loaded(i, st)
	case st.Op == task.OpStore && st.Code == task.CodeOK:
		c.stored(i, st, owner)
	default:
		if c.storeFailed(i, st, owner) {
			return // the slot is gone
		}
	}
	if fl.foreign > c.tab.slot(i).version {
		c.foreignAfter(i, fl)
	}
	c.resume(i)
	c.evict()
}

// loaded applies a load's result: the value, or the key's absence.
func (c *CachePrc) loaded(i uint32, st *task.Task) {
	if st.Code == task.CodeNotFound {
		c.setAbsent(i, c.nowMs())
		return
	}
	c.setValue(i, st.Value, st.Version, st.ExpireAt)
}

// stored applies a write the store committed, tells the subscribers, and answers the request
// that made it.
func (c *CachePrc) stored(i uint32, st, owner *task.Task) {
	if st.Delete {
		c.stats.deletes.Add(1)
		c.setAbsent(i, c.nowMs())
		c.tab.setDeleted(i, st.Version)
		c.emit(st.Key, st.Version, task.PushDelete, nil)
	} else {
		c.stats.sets.Add(1)
		c.setValue(i, st.Value, st.Version, st.ExpireAt)
		c.emit(st.Key, st.Version, task.PushSet, st.Value)
	}
	if owner == nil {
		return
	}
	owner.Version = st.Version
	switch owner.Op {
	case task.OpExec: // the processor's result, set when the write was sent (execWrite)
	case task.OpIncr:
		owner.Value = append(owner.Value[:0], c.tab.valueOf(i)...)
	default:
		owner.Value = owner.Value[:0]
	}
	c.reply(owner)
}

// storeFailed handles a load or write the store failed: nothing changed there, so nothing
// changes here; the request is answered with the store's error, and so are those waiting on a
// key that was never loaded (its slot goes: it reports true).
func (c *CachePrc) storeFailed(i uint32, st, owner *task.Task) bool {
	if owner != nil {
		c.fail(owner, st.Code, st.Err)
	}
	if c.tab.slot(i).state != stateLoading {
		return false
	}
	c.failAll(i, st.Code, st.Err)
	c.settle(i)
	c.removeSlot(i)
	return true
}

// resume runs the requests that waited for slot i, until one puts something in flight again.
func (c *CachePrc) resume(i uint32) {
	for fl := c.flights[i]; fl != nil && fl.busy == nil && len(fl.waiters) > 0; fl = c.flights[i] {
		t := fl.waiters[0]
		fl.waiters[0] = nil
		fl.waiters = fl.waiters[1:]
		prev := c.executing
		c.executing = t
		c.execute(i, t)
		c.executing = prev
	}
	c.settle(i)
	if c.flights[i] == nil && c.tab.slot(i).state == stateAbsent && c.cfg.NoNegativeCache {
		c.removeSlot(i) // absence is not cached: the next request asks the store again
	}
}

// timedOut answers everything waiting on an operation with "timeout". The operation stays in
// flight: if the store answers later, its result is applied then (a write may have committed).
func (c *CachePrc) timedOut(fl *inflight) {
	if !fl.late {
		fl.late = true
		c.stats.timeouts.Add(1)
		c.log.Warn("store timed out", "key", string(c.tab.key(c.tab.slot(fl.slot))), "op", fl.busy.Op, "after", c.cfg.StoreTimeout)
	}
	if fl.owner != nil {
		owner := fl.owner
		fl.owner = nil
		c.fail(owner, task.CodeTimeout, errStoreTimeout)
	}
	c.failAll(fl.slot, task.CodeTimeout, errStoreTimeout)
	c.loop.After(&fl.timeout, c.cfg.StoreTimeout) // requests arriving meanwhile time out too
}

func (c *CachePrc) failAll(i uint32, code task.Code, err error) {
	fl := c.flights[i]
	if fl == nil {
		return
	}
	for j, t := range fl.waiters {
		fl.waiters[j] = nil
		c.fail(t, code, err)
	}
	fl.waiters = fl.waiters[:0]
}

func (c *CachePrc) incr(i uint32, t *task.Task, present bool) {
	if !present {
		c.fail(t, task.CodeNotFound, nil)
		return
	}
	s := c.tab.slot(i)
	n, err := strconv.ParseInt(string(c.tab.value(s)), 10, 64)
	if err != nil {
		c.fail(t, task.CodeNotCounter, fmt.Errorf("value of %q is not a decimal integer", c.tab.key(s)))
		return
	}
	if (t.Delta > 0 && n > math.MaxInt64-t.Delta) || (t.Delta < 0 && n < math.MinInt64-t.Delta) {
		c.fail(t, task.CodeOverflow, fmt.Errorf("%d + %d is out of the 64-bit range", n, t.Delta))
		return
	}
	n += t.Delta
	t.Delta = n
	c.write(i, t, strconv.AppendInt(nil, n, 10), s.expireAt, false)
}

// replyStats answers the stats op: the cache's counters and, wired in by the daemon, the
// server's (ServerInfo). Every value is an integer unless the request asks for text too
// (task.FlagStatsText), so that a client may decode the reply into a map of integers.
func (c *CachePrc) replyStats(t *task.Task) {
	reply := statsReply{CacheStats: c.Stats()}
	if c.cfg.Info != nil {
		info := c.cfg.Info()
		if t.Flags&task.FlagStatsText == 0 {
			info.Version = ""
		}
		reply.ServerInfo = &info
	}
	b, err := json.Marshal(reply)
	if err != nil {
		c.fail(t, task.CodeInternal, err)
		return
	}
	t.Value = append(t.Value[:0], b...)
	c.reply(t)
}

// ---- expiry, swept by one timer at the earliest bucket ----

func (c *CachePrc) armSweep() {
	at, ok := c.tab.nextDue()
	if !ok {
		c.loop.Wheel().Cancel(&c.sweep)
		return
	}
	c.loop.After(&c.sweep, max(time.Duration(at-c.nowMs())*time.Millisecond, 0))
}

// sweepExpired expires every value past its TTL (the store forgets it too) and forgets every
// cached absence past the negative TTL. A slot with an operation in flight is left to that
// operation, which files it again.
func (c *CachePrc) sweepExpired() {
	now := c.nowMs()
	c.tab.popDue(now, func(i uint32, s *slot) {
		switch {
		case c.flights[i] != nil, s.expireAt > now:
		case s.state == statePresent:
			c.expire(i)
		case s.state == stateAbsent:
			c.removeSlot(i)
		}
	})
	c.armSweep()
}

func (c *CachePrc) expire(i uint32) {
	c.stats.expirations.Add(1)
	s := c.tab.slot(i)
	c.emit(c.tab.key(s), s.version, task.PushExpire, nil)
	c.setAbsent(i, c.nowMs())
}

// evict drops least recently used items with nothing in flight until the cache fits its
// budget. The store still has them; the next access reloads.
func (c *CachePrc) evict() {
	c.tab.oldest(func(i uint32) bool {
		if c.tab.bytes() <= c.cfg.Memory {
			return false
		}
		if c.flights[i] == nil {
			c.removeSlot(i)
			c.stats.evictions.Add(1)
		}
		return true
	})
}
