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
	e.timeout.Fn = func() { c.timedOut(e) }
	e.expiry.Fn = func() { c.expired(e) }
	c.entries[key] = e
	c.pushLRU(e)
	c.account(e, int64(len(key)+entryOverhead))
	c.stats.items.Add(1)
	return e
}

// load asks Outgoing for e's key; e's waiters are answered when it comes back.
func (c *CachePrc) load(e *entry) {
	c.stats.misses.Add(1)
	t := task.Get()
	t.Op = task.OpLoad
	t.Key = append(t.Key, e.key...)
	if !c.send(e, t, nil) {
		c.failAll(e, task.CodeBusy, errors.New("store queue full"))
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
		return
	}
	if st.Version > c.nextVersion {
		c.nextVersion = st.Version
	}
}

// send hands a load or store to Outgoing and arms the time-out. It reports false (and frees
// st) if Outgoing's queue is full.
func (c *CachePrc) send(e *entry, st, owner *task.Task) bool {
	if err := c.toStore.Push(st); err != nil {
		task.Put(st)
		return false
	}
	if st.Op == task.OpLoad {
		c.stats.loads.Add(1)
	} else {
		c.stats.stores.Add(1)
	}
	e.busy, e.owner = st, owner
	c.inflight++
	c.loop.After(&e.timeout, c.cfg.StoreTimeout)
	return true
}

// completion handles a load or store coming back from Outgoing.
func (c *CachePrc) completion(st *task.Task) {
	defer task.Put(st)
	c.inflight--
	e := c.entries[string(st.Key)]
	if e == nil || e.busy != st {
		c.log.Error("completion for no request in flight", "key", string(st.Key), "op", st.Op)
		return
	}
	c.loop.Wheel().Cancel(&e.timeout)
	e.busy, e.late = nil, false
	owner := e.owner
	e.owner = nil
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
	for len(e.waiters) > 0 && e.busy == nil {
		t := e.waiters[0]
		e.waiters[0] = nil
		e.waiters = e.waiters[1:]
		c.execute(e, t)
	}
	if len(e.waiters) == 0 {
		e.waiters = nil
	}
	if e.busy == nil && e.state == stateAbsent && c.cfg.NoNegativeCache {
		c.remove(e) // absence is not cached: the next request asks the store again
	}
}

// timedOut answers everything waiting on e with "timeout". The operation stays in flight: if
// the store answers later, its result is applied then (a write may well have committed).
func (c *CachePrc) timedOut(e *entry) {
	if !e.late {
		e.late = true
		c.stats.timeouts.Add(1)
		c.log.Warn("store timed out", "key", e.key, "op", e.busy.Op, "after", c.cfg.StoreTimeout)
	}
	if e.owner != nil {
		owner := e.owner
		e.owner = nil
		c.fail(owner, task.CodeTimeout, errStoreTimeout)
	}
	c.failAll(e, task.CodeTimeout, errStoreTimeout)
	c.loop.After(&e.timeout, c.cfg.StoreTimeout) // requests arriving meanwhile time out too
}

func (c *CachePrc) failAll(e *entry, code task.Code, err error) {
	for _, t := range e.waiters {
		c.fail(t, code, err)
	}
	e.waiters = nil
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
		c.loop.Wheel().Cancel(&e.expiry)
		return
	}
	wait := time.Duration(e.expireAt-c.nowMs()) * time.Millisecond
	c.loop.After(&e.expiry, max(wait, 0))
}

// expired is e's expiry timer: a value past its TTL is gone (the store forgets it too), and a
// cached absence past the negative TTL is forgotten so the next request asks the store.
func (c *CachePrc) expired(e *entry) {
	if e.busy != nil {
		return // the operation in flight decides; it re-arms the timer
	}
	if e.state == statePresent && e.expireAt != 0 && e.expireAt <= c.nowMs() {
		c.expire(e)
	}
	if e.state == stateAbsent {
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
	c.loop.Wheel().Cancel(&e.expiry)
	c.loop.Wheel().Cancel(&e.timeout)
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
		if e.busy == nil && len(e.waiters) == 0 {
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
