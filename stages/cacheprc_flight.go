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
	c.dropLive(i)
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
	c.dropLive(i)
	if c.tab.setAbsent(i, now+c.cfg.NegativeTTL.Milliseconds()) {
		c.armSweep()
	}
	c.account()
}

func (c *CachePrc) account() {
	c.stats.items.Store(c.tab.items)
	c.stats.bytes.Store(c.memUsed())
}

// memUsed is what the memory budget counts: the table, and the live values.
func (c *CachePrc) memUsed() int64 { return c.tab.bytes() + c.exec.liveMem }

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
	if fl == nil || fl.load != nil || len(fl.waiters) > 0 || len(fl.ops) > 0 {
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.waiters, fl.late, fl.foreign, fl.foreignDelete = fl.waiters[:0], false, 0, false
	fl.dirty, fl.bytes, fl.sent, fl.batch = false, 0, 0, nil
	if cap(fl.head.value) > 64<<10 {
		fl.head.value = nil // one large value does not pin memory
	}
	delete(c.flights, i)
	c.freeFlights = append(c.freeFlights, fl)
}

// load asks Outgoing for slot i's key on behalf of t; the waiters are answered when it comes back.
func (c *CachePrc) load(i uint32, t *task.Task) {
	fl := c.flight(i)
	fl.waiters = append(fl.waiters, t)
	c.loadFor(i)
}

// loadFor asks Outgoing for slot i's key, which requests wait for.
func (c *CachePrc) loadFor(i uint32) {
	c.stats.misses.Add(1)
	lt := task.Get()
	lt.Op = task.OpLoad
	lt.Key = append(lt.Key, c.tab.keyOf(i)...)
	fl := c.flight(i)
	if err := c.toStore.Push(lt); err != nil {
		task.Put(lt)
		c.failAll(i, task.CodeBusy, errors.New("store queue full"))
		c.settle(i)
		c.removeSlot(i)
		return
	}
	c.stats.loads.Add(1)
	fl.load = lt
	c.inflight++
	c.loop.After(&fl.timeout, c.cfg.StoreTimeout)
}

// completion handles what comes back from Outgoing: a load, a group commit, or news from a
// shared store's change feed.
func (c *CachePrc) completion(st *task.Task) {
	switch st.Op {
	case task.OpChanged, task.OpFeedState, task.OpFeedResync:
		c.changed(st)
	case task.OpStore:
		b := st.Ctx.(*commitBatch)
		st.Ctx = nil
		c.committed(b)
	case task.OpScan:
		c.scanDone(st) // the request itself: answered, not recycled
		return
	default:
		c.loadDone(st)
	}
	task.Put(st) // not deferred: after a panic, onPanic still reads st
}

// loadDone applies a load's result and runs the requests that waited for it.
func (c *CachePrc) loadDone(st *task.Task) {
	c.inflight--
	defer c.closeStoreIfDone() // stopping: the last thing in flight closes Outgoing's queue
	i := c.tab.lookup(st.Key)
	fl := c.flights[i]
	if i == 0 || fl == nil || fl.load != st {
		c.log.Error("completion for no load in flight", "key", string(st.Key), "op", st.Op)
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.load, fl.late = nil, false
	switch st.Code {
	case task.CodeNotFound:
		c.setAbsent(i, c.nowMs())
	case task.CodeOK:
		c.dropLive(i)
		c.setValue(i, st.Value, st.Version, st.ExpireAt)
	default: // nothing is known of the key: everyone waiting gets the store's error
		c.failAll(i, st.Code, st.Err)
		c.settle(i)
		c.removeSlot(i)
		return
	}
	if fl.foreign > c.tab.slot(i).version {
		c.foreignAfter(i, fl)
		if c.flights[i] == nil || c.flights[i].load != nil {
			return
		}
	}
	c.resume(i)
	c.evict()
}

// resume runs the requests that waited for slot i, in order, until one has to wait again.
func (c *CachePrc) resume(i uint32) {
	for fl := c.flights[i]; fl != nil && fl.load == nil && len(fl.waiters) > 0 && !c.waits(i, fl.waiters[0]); fl = c.flights[i] {
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

// timedOut answers everything waiting on a load with "timeout". The load stays in flight: if
// the store answers later, its result is applied then.
func (c *CachePrc) timedOut(fl *inflight) {
	if !fl.late {
		fl.late = true
		c.stats.timeouts.Add(1)
		c.log.Warn("store timed out", "key", string(c.tab.keyOf(fl.slot)), "op", "load", "after", c.cfg.StoreTimeout)
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

// incr adds t.Delta to the decimal counter at slot i's head. A missing key is a counter at 0
// (Redis's INCR; it is created without a TTL), unless the request asks for memcached's incr
// (task.FlagMustExist): then it is not_found.
func (c *CachePrc) incr(i uint32, t *task.Task, v view) {
	var n int64
	var err error
	switch {
	case v.present:
		n, err = strconv.ParseInt(string(c.headValue(i)), 10, 64)
	case t.Flags&task.FlagMustExist != 0:
		c.refuse(i, t, task.CodeNotFound, nil)
		return
	}
	if err != nil {
		c.refuse(i, t, task.CodeNotCounter, fmt.Errorf("value of %q is not a decimal integer", c.tab.keyOf(i)))
		return
	}
	if (t.Delta > 0 && n > math.MaxInt64-t.Delta) || (t.Delta < 0 && n < math.MinInt64-t.Delta) {
		c.refuse(i, t, task.CodeOverflow, fmt.Errorf("%d + %d is out of the 64-bit range", n, t.Delta))
		return
	}
	expireAt := v.expireAt // the key keeps its TTL
	if !v.present {
		expireAt = 0
	}
	n += t.Delta
	t.Delta = n
	t.Value = strconv.AppendInt(t.Value[:0], n, 10) // the reply, and the push
	c.applyChange(i, t, newHead{value: t.Value, expireAt: expireAt, keep: true})
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
		if c.memUsed() <= c.cfg.Memory {
			return false
		}
		if c.flights[i] == nil {
			c.removeSlot(i)
			c.stats.evictions.Add(1)
		}
		return true
	})
}
