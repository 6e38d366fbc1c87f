package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/task"
)

var errStoreTimeout = errors.New("the store did not answer in time")

func (c *CachePrc) newEntry(key string, st entryState) *entry {
	e := &entry{key: key, state: st}
	c.entries[key] = e
	c.pushLRU(e)
	c.account(e, int64(len(key)+entryOverhead))
	c.stats.items.Add(1)
	return e
}

// flight returns e's in-flight record, taking one from the pool if e has none.
func (c *CachePrc) flight(e *entry) *inflight {
	if e.fl != nil {
		return e.fl
	}
	var fl *inflight
	if n := len(c.freeFlights); n > 0 {
		fl = c.freeFlights[n-1]
		c.freeFlights = c.freeFlights[:n-1]
	} else {
		fl = &inflight{}
		fl.timeout.Fn = func() { c.timedOut(fl) } // once per pooled record, not per entry
	}
	fl.e, e.fl = e, fl
	return fl
}

// settle returns e's in-flight record to the pool once nothing is in flight or waiting.
func (c *CachePrc) settle(e *entry) {
	fl := e.fl
	if fl == nil || fl.busy != nil || len(fl.waiters) > 0 {
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.e, fl.owner, fl.waiters, fl.late = nil, nil, fl.waiters[:0], false
	e.fl = nil
	c.freeFlights = append(c.freeFlights, fl)
}

// load asks Outgoing for e's key on behalf of t; the waiters are answered when it comes back.
func (c *CachePrc) load(e *entry, t *task.Task) {
	c.stats.misses.Add(1)
	fl := c.flight(e)
	fl.waiters = append(fl.waiters, t)
	lt := task.Get()
	lt.Op = task.OpLoad
	lt.Key = append(lt.Key, e.key...)
	if !c.send(e, lt, nil) {
		c.failAll(e, task.CodeBusy, errors.New("store queue full"))
		c.settle(e)
		c.remove(e)
	}
}

// write sends a new value (or a delete) for e to Outgoing on behalf of the request t.
func (c *CachePrc) write(e *entry, t *task.Task, value []byte, expireAt int64, del bool) {
	st := task.Get()
	st.Op = task.OpStore
	st.Key = append(st.Key, e.key...)
	st.Value = append(st.Value, value...)
	st.TTLms = expireAt
	if del {
		st.Flags = task.FlagDelete
	}
	st.Version = c.nextVersion + 1
	if t.Op == task.OpTouch {
		st.Version = e.version // a new deadline is not a new value
	}
	if !c.send(e, st, t) {
		c.fail(t, task.CodeBusy, errors.New("store queue full"))
		c.settle(e)
		return
	}
	if st.Version > c.nextVersion {
		c.nextVersion = st.Version
	}
}

// send hands a load or store to Outgoing and arms the time-out. It reports false (and frees
// st) if Outgoing's queue is full.
func (c *CachePrc) send(e *entry, st, owner *task.Task) bool {
	fl := c.flight(e)
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
	defer task.Put(st)
	c.inflight--
	e := c.entries[string(st.Key)]
	if e == nil || e.fl == nil || e.fl.busy != st {
		c.log.Error("completion for no request in flight", "key", string(st.Key), "op", st.Op)
		return
	}
	fl := e.fl
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.busy, fl.late = nil, false
	owner := fl.owner
	fl.owner = nil
	now := c.nowMs()
	switch {
	case st.Op == task.OpLoad && st.Code == task.CodeOK:
		c.setValue(e, st.Value, st.Version, st.TTLms)
	case st.Op == task.OpLoad && st.Code == task.CodeNotFound:
		c.setAbsent(e, now)
	case st.Op == task.OpStore && st.Code == task.CodeOK:
		if st.Flags&task.FlagDelete != 0 {
			c.stats.deletes.Add(1)
			c.setAbsent(e, now)
		} else {
			c.stats.sets.Add(1)
			c.setValue(e, st.Value, st.Version, st.TTLms)
		}
		if owner != nil {
			owner.Version = st.Version
			if owner.Op == task.OpIncr {
				owner.Value = append(owner.Value[:0], e.value...)
			} else {
				owner.Value = owner.Value[:0]
			}
			c.reply(owner)
			owner = nil
		}
	default: // the store failed: nothing changed there, so nothing changes here
		if owner != nil {
			c.fail(owner, st.Code, st.Err)
			owner = nil
		}
		if e.state == stateLoading {
			c.failAll(e, st.Code, st.Err)
			c.settle(e)
			c.remove(e)
			return
		}
	}
	if owner != nil { // answered by a time-out already
		task.Put(owner)
	}
	c.resume(e)
	c.evict()
}

// resume runs the requests that waited for e, until one of them puts something in flight again.
func (c *CachePrc) resume(e *entry) {
	for fl := e.fl; fl != nil && fl.busy == nil && len(fl.waiters) > 0; fl = e.fl {
		t := fl.waiters[0]
		fl.waiters[0] = nil
		fl.waiters = fl.waiters[1:]
		c.execute(e, t)
	}
	c.settle(e)
	if e.fl == nil && e.state == stateAbsent && c.cfg.NoNegativeCache {
		c.remove(e) // absence is not cached: the next request asks the store again
	}
}

// timedOut answers everything waiting on an operation with "timeout". The operation stays in
// flight: if the store answers later, its result is applied then (a write may have committed).
func (c *CachePrc) timedOut(fl *inflight) {
	e := fl.e
	if !fl.late {
		fl.late = true
		c.stats.timeouts.Add(1)
		c.log.Warn("store timed out", "key", e.key, "op", fl.busy.Op, "after", c.cfg.StoreTimeout)
	}
	if fl.owner != nil {
		owner := fl.owner
		fl.owner = nil
		c.fail(owner, task.CodeTimeout, errStoreTimeout)
	}
	c.failAll(e, task.CodeTimeout, errStoreTimeout)
	c.loop.After(&fl.timeout, c.cfg.StoreTimeout) // requests arriving meanwhile time out too
}

func (c *CachePrc) failAll(e *entry, code task.Code, err error) {
	if e.fl == nil {
		return
	}
	for i, t := range e.fl.waiters {
		e.fl.waiters[i] = nil
		c.fail(t, code, err)
	}
	e.fl.waiters = e.fl.waiters[:0]
}

func (c *CachePrc) setValue(e *entry, value []byte, version uint64, expireAt int64) {
	c.account(e, int64(len(value)-len(e.value)))
	e.value = append(e.value[:0], value...)
	e.version, e.expireAt, e.state = version, expireAt, statePresent
	c.armExpiry(e)
}

func (c *CachePrc) setAbsent(e *entry, now int64) {
	c.account(e, -int64(len(e.value)))
	e.value, e.version, e.state = nil, 0, stateAbsent
	e.expireAt = now + c.cfg.NegativeTTL.Milliseconds()
	c.armExpiry(e)
}

func (c *CachePrc) armExpiry(e *entry) {
	if e.expireAt == 0 {
		c.disarmExpiry(e)
		return
	}
	if e.ttl == nil {
		if n := len(c.freeTTLs); n > 0 {
			e.ttl = c.freeTTLs[n-1]
			c.freeTTLs = c.freeTTLs[:n-1]
		} else {
			tt := &ttlTimer{}
			tt.t.Fn = func() { c.expired(tt.e) } // once per pooled record, not per entry
			e.ttl = tt
		}
		e.ttl.e = e
	}
	wait := time.Duration(e.expireAt-c.nowMs()) * time.Millisecond
	c.loop.After(&e.ttl.t, max(wait, 0))
}

func (c *CachePrc) disarmExpiry(e *entry) {
	if e.ttl == nil {
		return
	}
	c.loop.Wheel().Cancel(&e.ttl.t)
	e.ttl.e = nil
	c.freeTTLs = append(c.freeTTLs, e.ttl)
	e.ttl = nil
}

// expired is e's expiry timer: a value past its TTL is gone (the store forgets it too), and a
// cached absence past the negative TTL is forgotten so the next request asks the store.
func (c *CachePrc) expired(e *entry) {
	if e.fl != nil && e.fl.busy != nil {
		return // the operation in flight decides, and re-arms the expiry
	}
	if e.state == statePresent && e.expireAt != 0 && e.expireAt <= c.nowMs() {
		c.expire(e)
	}
	if e.state == stateAbsent && e.fl == nil {
		c.remove(e)
	}
}

func (c *CachePrc) expire(e *entry) {
	c.stats.expirations.Add(1)
	c.setAbsent(e, c.nowMs())
}

func (c *CachePrc) incr(e *entry, t *task.Task, present bool, now int64) {
	if !present {
		c.fail(t, task.CodeNotFound, nil)
		return
	}
	n, err := strconv.ParseInt(string(e.value), 10, 64)
	if err != nil {
		c.fail(t, task.CodeNotCounter, fmt.Errorf("value of %q is not a decimal integer", e.key))
		return
	}
	n += t.Delta
	t.Delta = n
	c.write(e, t, strconv.AppendInt(nil, n, 10), e.expireAt, false)
}

func (c *CachePrc) replyStats(t *task.Task) {
	b, err := json.Marshal(c.Stats())
	if err != nil {
		c.fail(t, task.CodeInternal, err)
		return
	}
	t.Value = append(t.Value[:0], b...)
	c.reply(t)
}

// remove forgets e entirely. e must have nothing in flight.
func (c *CachePrc) remove(e *entry) {
	c.disarmExpiry(e)
	delete(c.entries, e.key)
	c.unlinkLRU(e)
	c.account(e, -int64(len(e.key)+len(e.value)+entryOverhead))
	c.stats.items.Add(-1)
}

func (c *CachePrc) account(_ *entry, delta int64) {
	c.bytes += delta
	c.stats.bytes.Store(c.bytes)
}

// evict drops least recently used entries with nothing in flight until the cache fits its
// budget. The store still has them; the next access reloads.
func (c *CachePrc) evict() {
	for e := c.tail; c.bytes > c.cfg.Memory && e != nil; {
		prev := e.prev
		if e.fl == nil {
			c.remove(e)
			c.stats.evictions.Add(1)
		}
		e = prev
	}
}

func (c *CachePrc) pushLRU(e *entry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *CachePrc) unlinkLRU(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *CachePrc) touchLRU(e *entry) {
	if c.head != e {
		c.unlinkLRU(e)
		c.pushLRU(e)
	}
}
