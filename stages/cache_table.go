package stages

import (
	"bytes"
	"container/heap"
	"hash/maphash"
)

// table is CachePrc's data structure, apart from what the operations do with it: an index from
// key to slot (hash chains), the slots and their keys and values in the arena (cache_arena.go),
// the LRU list, and expiry buckets. It knows nothing of requests, flights, stores or stats: the
// stage decides, the table keeps. Loop goroutine only (it is CachePrc's).
type table struct {
	arena      *arena
	slots      slotTable
	index      map[uint64]uint32 // key hash -> first slot with that hash
	seed       maphash.Seed
	head, tail uint32             // LRU ends: most recent at head
	buckets    map[int64][]uint32 // expiry: bucketMs bucket -> slots due in it
	due        bucketHeap         // bucket ids in buckets, earliest first
	items      int64
}

// entryState is what a slot knows of its key.
type entryState uint8

const (
	stateLoading entryState = iota // unknown until the store answers
	statePresent
	stateAbsent // known absent (deleted, expired, or not in the store), until expireAt
)

// slotOverhead approximates what an item costs beyond its arena cell: its slot, its index
// entry and their share of free space. Used for the memory budget.
const slotOverhead = 96

// bucketMs is the width of an expiry bucket: deadlines are met to within it.
const bucketMs = 100

func newTable() *table {
	return &table{arena: newArena(), index: make(map[uint64]uint32), seed: maphash.MakeSeed(),
		buckets: make(map[int64][]uint32)}
}

func (t *table) slot(i uint32) *slot     { return t.slots.get(i) }
func (t *table) key(s *slot) []byte      { return t.arena.cell(s.kv)[:s.klen] }
func (t *table) value(s *slot) []byte    { return t.arena.cell(s.kv)[s.klen : int(s.klen)+int(s.vlen)] }
func (t *table) bytes() int64            { return t.arena.inUse + t.items*slotOverhead }
func (t *table) keyOf(i uint32) []byte   { return t.key(t.slot(i)) }
func (t *table) valueOf(i uint32) []byte { return t.value(t.slot(i)) }

// lookup returns the slot holding key, or 0.
func (t *table) lookup(key []byte) uint32 {
	for i := t.index[maphash.Bytes(t.seed, key)]; i != 0; {
		s := t.slot(i)
		if bytes.Equal(t.key(s), key) {
			return i
		}
		i = s.chain
	}
	return 0
}

// insert creates the slot of a key not in the table yet, in state loading, most recently used.
func (t *table) insert(key []byte) uint32 {
	i := t.slots.alloc()
	s := t.slot(i)
	s.used, s.state = true, stateLoading
	s.hash = maphash.Bytes(t.seed, key)
	s.klen = uint16(len(key))
	s.kv = t.arena.alloc(len(key))
	copy(t.arena.cell(s.kv), key)
	s.chain = t.index[s.hash] // a hash collision chains behind the existing slot
	t.index[s.hash] = i
	t.pushLRU(i)
	t.items++
	return i
}

// remove forgets slot i entirely.
func (t *table) remove(i uint32) {
	s := t.slot(i)
	if head := t.index[s.hash]; head == i {
		if s.chain != 0 {
			t.index[s.hash] = s.chain
		} else {
			delete(t.index, s.hash)
		}
	} else {
		for p := head; p != 0; p = t.slot(p).chain {
			if ps := t.slot(p); ps.chain == i {
				ps.chain = s.chain
				break
			}
		}
	}
	t.unlinkLRU(i)
	t.arena.free(s.kv)
	t.slots.release(i) // stale expiry-bucket references to i are recognised and skipped
	t.items--
}

// resize makes s's cell fit its key and a value of n bytes, moving it if needed.
func (t *table) resize(s *slot, n int) {
	need := int(s.klen) + n
	size := t.arena.cellSize(s.kv)
	if need <= size && (size <= 2*minCell || need > size/2) {
		return
	}
	kv := t.arena.alloc(need)
	copy(t.arena.cell(kv), t.key(s))
	t.arena.free(s.kv)
	s.kv = kv
}

// setValue stores a value in slot i. It reports whether the earliest expiry bucket changed.
func (t *table) setValue(i uint32, value []byte, version uint64, expireAt int64) bool {
	s := t.slot(i)
	t.resize(s, len(value))
	copy(t.arena.cell(s.kv)[s.klen:], value)
	s.vlen, s.version, s.expireAt, s.state = uint32(len(value)), version, expireAt, statePresent
	return t.file(i)
}

// setAbsent marks slot i as known absent until forgetAt. It reports whether the earliest
// expiry bucket changed.
func (t *table) setAbsent(i uint32, forgetAt int64) bool {
	s := t.slot(i)
	t.resize(s, 0)
	s.vlen, s.version, s.state, s.expireAt = 0, 0, stateAbsent, forgetAt
	return t.file(i)
}

// setDeleted gives absent slot i the version of the delete that made it absent, so that the
// feed's echo of that delete is recognised.
func (t *table) setDeleted(i uint32, version uint64) { t.slot(i).version = version }

// unload forgets slot i's value and version: it is loading again.
func (t *table) unload(i uint32) {
	s := t.slot(i)
	t.resize(s, 0)
	s.vlen, s.version, s.state = 0, 0, stateLoading
}

// ---- expiry buckets ----

// file puts slot i under its deadline's bucket, and reports whether that bucket is now the
// earliest. Nothing is ever unfiled: a bucket may hold slots whose deadline has moved, or that
// were removed and reused, and due skips those.
func (t *table) file(i uint32) bool {
	s := t.slot(i)
	if s.expireAt == 0 {
		return false
	}
	b := (s.expireAt + bucketMs - 1) / bucketMs
	list, ok := t.buckets[b]
	t.buckets[b] = append(list, i)
	if ok {
		return false
	}
	heap.Push(&t.due, b)
	return t.due[0] == b
}

// nextDue returns when the earliest bucket is due (unix ms), and false if none is.
func (t *table) nextDue() (int64, bool) {
	if len(t.due) == 0 {
		return 0, false
	}
	return t.due[0] * bucketMs, true
}

// popDue calls fn for each slot filed in a bucket due at now whose deadline is still that
// bucket's, emptying those buckets.
func (t *table) popDue(now int64, fn func(i uint32, s *slot)) {
	for len(t.due) > 0 && t.due[0]*bucketMs <= now {
		b := heap.Pop(&t.due).(int64)
		list := t.buckets[b]
		delete(t.buckets, b)
		for _, i := range list {
			if s := t.slot(i); s.used && s.expireAt != 0 && (s.expireAt+bucketMs-1)/bucketMs == b {
				fn(i, s)
			}
		}
	}
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

// ---- LRU ----

// oldest calls fn for slots from the least recently used on, until fn returns false. fn may
// remove the slot it is given.
func (t *table) oldest(fn func(i uint32) bool) {
	for i := t.tail; i != 0; {
		prev := t.slot(i).prev
		if !fn(i) {
			return
		}
		i = prev
	}
}

// each calls fn for every slot; fn may remove the slot it is given.
func (t *table) each(fn func(i uint32)) {
	for _, head := range t.index {
		for i := head; i != 0; {
			next := t.slot(i).chain
			fn(i)
			i = next
		}
	}
}

// touch makes slot i the most recently used.
func (t *table) touch(i uint32) {
	if t.head != i {
		t.unlinkLRU(i)
		t.pushLRU(i)
	}
}

func (t *table) pushLRU(i uint32) {
	s := t.slot(i)
	s.prev, s.next = 0, t.head
	if t.head != 0 {
		t.slot(t.head).prev = i
	}
	t.head = i
	if t.tail == 0 {
		t.tail = i
	}
}

func (t *table) unlinkLRU(i uint32) {
	s := t.slot(i)
	if s.prev != 0 {
		t.slot(s.prev).next = s.next
	} else {
		t.head = s.next
	}
	if s.next != 0 {
		t.slot(s.next).prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = 0, 0
}
