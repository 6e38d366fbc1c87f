package stages

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/task"
)

var errStoreTimeout = errors.New("the store did not answer in time")

// ---- slots: lookup, creation, removal, key and value bytes ----

func (c *CachePrc) key(s *slot) []byte   { return c.arena.cell(s.kv)[:s.klen] }
func (c *CachePrc) value(s *slot) []byte { return c.arena.cell(s.kv)[s.klen : int(s.klen)+int(s.vlen)] }

// lookup returns the slot holding key, or 0.
func (c *CachePrc) lookup(key []byte) uint32 {
	for i := c.index[maphash.Bytes(c.seed, key)]; i != 0; {
		s := c.slots.get(i)
		if bytes.Equal(c.key(s), key) {
			return i
		}
		i = s.chain
	}
	return 0
}

// newSlot creates the slot of a key not cached yet, in state loading.
func (c *CachePrc) newSlot(key []byte) uint32 {
	i := c.slots.alloc()
	s := c.slots.get(i)
	s.used, s.state = true, stateLoading
	s.hash = maphash.Bytes(c.seed, key)
	s.klen = uint16(len(key))
	s.kv = c.arena.alloc(len(key))
	copy(c.arena.cell(s.kv), key)
	s.chain = c.index[s.hash] // a hash collision chains behind the existing slot
	c.index[s.hash] = i
	c.pushLRU(i)
	c.items++
	c.stats.items.Store(c.items)
	c.account()
	return i
}

// removeSlot forgets slot i entirely. It must have nothing in flight.
func (c *CachePrc) removeSlot(i uint32) {
	s := c.slots.get(i)
	if head := c.index[s.hash]; head == i {
		if s.chain != 0 {
			c.index[s.hash] = s.chain
		} else {
			delete(c.index, s.hash)
		}
	} else {
		for p := head; p != 0; p = c.slots.get(p).chain {
			if ps := c.slots.get(p); ps.chain == i {
				ps.chain = s.chain
				break
			}
		}
	}
	c.unlinkLRU(i)
	c.arena.free(s.kv)
	c.slots.release(i) // stale expiry-bucket references to i are recognised and skipped
	c.items--
	c.stats.items.Store(c.items)
	c.account()
}

// resize makes slot i's cell fit its key and a value of n bytes, moving it if needed.
func (c *CachePrc) resize(s *slot, n int) {
	need := int(s.klen) + n
	size := c.arena.cellSize(s.kv)
	if need <= size && (size <= 2*minCell || need > size/2) {
		return
	}
	kv := c.arena.alloc(need)
	copy(c.arena.cell(kv), c.key(s))
	c.arena.free(s.kv)
	s.kv = kv
}

// setValue stores a value in slot i (which has its operation in flight, so eviction, which runs
// here before anyone is answered, never takes it).
func (c *CachePrc) setValue(i uint32, value []byte, version uint64, expireAt int64) {
	s := c.slots.get(i)
	c.resize(s, len(value))
	copy(c.arena.cell(s.kv)[s.klen:], value)
	s.vlen, s.version, s.expireAt, s.state = uint32(len(value)), version, expireAt, statePresent
	c.armExpiry(i)
	c.account()
	c.evict()
}

func (c *CachePrc) setAbsent(i uint32, now int64) {
	s := c.slots.get(i)
	c.resize(s, 0)
	s.vlen, s.version, s.state = 0, 0, stateAbsent
	s.expireAt = now + c.cfg.NegativeTTL.Milliseconds()
	c.armExpiry(i)
	c.account()
}

func (c *CachePrc) account() {
	c.bytes = c.arena.inUse + c.items*slotOverhead
	c.stats.bytes.Store(c.bytes)
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
	lt.Key = append(lt.Key, c.key(c.slots.get(i))...)
	if !c.send(i, lt, nil) {
		c.failAll(i, task.CodeBusy, errors.New("store queue full"))
		c.settle(i)
		c.removeSlot(i)
	}
}

// write sends a new value (or a delete) for slot i to Outgoing on behalf of the request t.
func (c *CachePrc) write(i uint32, t *task.Task, value []byte, expireAt int64, del bool) {
	s := c.slots.get(i)
	st := task.Get()
	st.Op = task.OpStore
	st.Key = append(st.Key, c.key(s)...)
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
		return
	}
	if version > c.nextVersion {
		c.nextVersion = version
	}
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
	i := c.lookup(st.Key)
	fl := c.flights[i]
	if i == 0 || fl == nil || fl.busy != st {
		c.log.Error("completion for no request in flight", "key", string(st.Key), "op", st.Op)
		return
	}
	c.loop.Wheel().Cancel(&fl.timeout)
	fl.busy, fl.late = nil, false
	owner := fl.owner
	fl.owner = nil
	now := c.nowMs()
	switch {
	case st.Op == task.OpLoad && st.Code == task.CodeOK:
		c.setValue(i, st.Value, st.Version, st.ExpireAt)
	case st.Op == task.OpLoad && st.Code == task.CodeNotFound:
		c.setAbsent(i, now)
	case st.Op == task.OpStore && st.Code == task.CodeOK:
		if st.Delete {
			c.stats.deletes.Add(1)
			c.setAbsent(i, now)
			c.slots.get(i).version = st.Version // remembered, so the feed's echo of it is recognised
			c.emit(st.Key, st.Version, task.PushDelete, nil)
		} else {
			c.stats.sets.Add(1)
			c.setValue(i, st.Value, st.Version, st.ExpireAt)
			c.emit(st.Key, st.Version, task.PushSet, st.Value)
		}
		if owner != nil {
			owner.Version = st.Version
			if owner.Op == task.OpIncr {
				owner.Value = append(owner.Value[:0], c.value(c.slots.get(i))...)
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
		if c.slots.get(i).state == stateLoading {
			c.failAll(i, st.Code, st.Err)
			c.settle(i)
			c.removeSlot(i)
			return
		}
	}
	if owner != nil { // answered by a time-out already
		task.Put(owner)
	}
	if fl.foreign > c.slots.get(i).version {
		c.foreignAfter(i, fl)
	}
	c.resume(i)
	c.evict()
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
	if c.flights[i] == nil && c.slots.get(i).state == stateAbsent && c.cfg.NoNegativeCache {
		c.removeSlot(i) // absence is not cached: the next request asks the store again
	}
}

// timedOut answers everything waiting on an operation with "timeout". The operation stays in
// flight: if the store answers later, its result is applied then (a write may have committed).
func (c *CachePrc) timedOut(fl *inflight) {
	if !fl.late {
		fl.late = true
		c.stats.timeouts.Add(1)
		c.log.Warn("store timed out", "key", string(c.key(c.slots.get(fl.slot))), "op", fl.busy.Op, "after", c.cfg.StoreTimeout)
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
	s := c.slots.get(i)
	n, err := strconv.ParseInt(string(c.value(s)), 10, 64)
	if err != nil {
		c.fail(t, task.CodeNotCounter, fmt.Errorf("value of %q is not a decimal integer", c.key(s)))
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

// ---- expiry: 100 ms buckets of slot indices, swept by one timer ----

const bucketMs = 100

// armExpiry files slot i under its deadline. Nothing is ever unfiled: a bucket may hold slots
// whose deadline has moved, or that were removed and reused, and the sweep skips those.
func (c *CachePrc) armExpiry(i uint32) {
	s := c.slots.get(i)
	if s.expireAt == 0 {
		return
	}
	b := (s.expireAt + bucketMs - 1) / bucketMs
	list, ok := c.buckets[b]
	c.buckets[b] = append(list, i)
	if !ok {
		heap.Push(&c.due, b)
		if c.due[0] == b {
			c.armSweep()
		}
	}
}

func (c *CachePrc) armSweep() {
	if len(c.due) == 0 {
		c.loop.Wheel().Cancel(&c.sweep)
		return
	}
	wait := time.Duration(c.due[0]*bucketMs-c.nowMs()) * time.Millisecond
	c.loop.After(&c.sweep, max(wait, 0))
}

// sweepExpired expires every value past its TTL (the store forgets it too) and forgets every
// cached absence past the negative TTL, bucket by bucket.
func (c *CachePrc) sweepExpired() {
	now := c.nowMs()
	for len(c.due) > 0 && c.due[0]*bucketMs <= now {
		b := heap.Pop(&c.due).(int64)
		list := c.buckets[b]
		delete(c.buckets, b)
		for _, i := range list {
			s := c.slots.get(i)
			if !s.used || s.expireAt == 0 || (s.expireAt+bucketMs-1)/bucketMs != b || c.flights[i] != nil {
				continue // moved, removed, or in flight (the operation decides and re-files it)
			}
			if s.state == statePresent && s.expireAt <= now {
				c.expire(i)
			} else if s.state == stateAbsent && s.expireAt <= now {
				c.removeSlot(i)
			}
		}
	}
	c.armSweep()
}

func (c *CachePrc) expire(i uint32) {
	c.stats.expirations.Add(1)
	s := c.slots.get(i)
	c.emit(c.key(s), s.version, task.PushExpire, nil)
	c.setAbsent(i, c.nowMs())
}

// bucketHeap is a min-heap of bucket ids.
type bucketHeap []int64

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(a, b int) bool { return h[a] < h[b] }
func (h bucketHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *bucketHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *bucketHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ---- memory budget and LRU ----

// evict drops least recently used items with nothing in flight until the cache fits its
// budget. The store still has them; the next access reloads.
func (c *CachePrc) evict() {
	for i := c.tail; c.bytes > c.cfg.Memory && i != 0; {
		prev := c.slots.get(i).prev
		if c.flights[i] == nil {
			c.removeSlot(i)
			c.stats.evictions.Add(1)
		}
		i = prev
	}
}

func (c *CachePrc) pushLRU(i uint32) {
	s := c.slots.get(i)
	s.prev, s.next = 0, c.head
	if c.head != 0 {
		c.slots.get(c.head).prev = i
	}
	c.head = i
	if c.tail == 0 {
		c.tail = i
	}
}

func (c *CachePrc) unlinkLRU(i uint32) {
	s := c.slots.get(i)
	if s.prev != 0 {
		c.slots.get(s.prev).next = s.next
	} else {
		c.head = s.next
	}
	if s.next != 0 {
		c.slots.get(s.next).prev = s.prev
	} else {
		c.tail = s.prev
	}
	s.prev, s.next = 0, 0
}

func (c *CachePrc) touchLRU(i uint32) {
	if c.head != i {
		c.unlinkLRU(i)
		c.pushLRU(i)
	}
}
