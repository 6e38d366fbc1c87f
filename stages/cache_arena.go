package stages

import "math/bits"

// The cache's storage is built so that the garbage collector has almost nothing to visit,
// however many items are cached: keys and values live in a slab arena of large byte chunks, and
// entries are fixed-size slots, without pointers, in large chunked arrays. BENCHMARKS.md has
// the measurements that led here.

// arena stores byte strings in cells of size classes carved out of large chunks. Freed cells
// go to their class's free list and are reused; chunks are never returned to the runtime (the
// memory budget bounds them). Loop goroutine only.
type arena struct {
	classes [numClasses]sizeClass
	inUse   int64 // bytes in allocated cells
}

type sizeClass struct {
	size     int
	perChunk int
	chunks   [][]byte
	free     []uint32 // freed cell ids
	next     uint32   // first never-used cell id
}

// cellRef locates a cell: its class in the top byte, its id below. 0 means none.
type cellRef uint64

const (
	minCell    = 32
	chunkBytes = 1 << 20
	numClasses = 56 // classes grow by 1/4 from 32 bytes; the last holds more than 4 MiB + a key
)

var classSizes = func() (s [numClasses]int) {
	size := minCell
	for i := range s {
		s[i] = size
		size = (size + size/4 + 15) &^ 15
	}
	return s
}()

func newArena() *arena {
	a := &arena{}
	for i := range a.classes {
		size := classSizes[i]
		a.classes[i] = sizeClass{size: size, perChunk: max(1, chunkBytes/size)}
	}
	return a
}

// classFor returns the smallest class whose cells hold n bytes.
func classFor(n int) int {
	if n <= minCell {
		return 0
	}
	// Start near the answer (classes grow by ~1.25x, so ~3.1 classes per doubling) and walk up.
	i := max(0, (bits.Len(uint(n-1))-6)*3)
	for i > 0 && classSizes[i-1] >= n {
		i--
	}
	for classSizes[i] < n {
		i++
	}
	return i
}

// alloc returns a cell of at least n bytes (n <= the largest class).
func (a *arena) alloc(n int) cellRef {
	ci := classFor(n)
	c := &a.classes[ci]
	var id uint32
	if k := len(c.free); k > 0 {
		id = c.free[k-1]
		c.free = c.free[:k-1]
	} else {
		id = c.next
		c.next++
		if int(id)/c.perChunk == len(c.chunks) {
			c.chunks = append(c.chunks, make([]byte, c.perChunk*c.size))
		}
	}
	a.inUse += int64(c.size)
	return cellRef(uint64(ci+1)<<56 | uint64(id))
}

// cell returns the whole cell r.
func (a *arena) cell(r cellRef) []byte {
	c := &a.classes[int(r>>56)-1]
	id := int(uint32(r))
	off := (id % c.perChunk) * c.size
	return c.chunks[id/c.perChunk][off : off+c.size : off+c.size]
}

func (a *arena) cellSize(r cellRef) int { return a.classes[int(r>>56)-1].size }

func (a *arena) free(r cellRef) {
	c := &a.classes[int(r>>56)-1]
	c.free = append(c.free, uint32(r))
	a.inUse -= int64(c.size)
}

// slot is one cached key: pointer-free, so the collector never scans the slot arrays.
type slot struct {
	hash       uint64
	kv         cellRef // key then value, in the arena
	klen       uint16
	vlen       uint32
	state      entryState
	used       bool
	version    uint64
	expireAt   int64  // unix ms; 0 = never (for an absent entry: when to forget the absence)
	prev, next uint32 // LRU list, most recent at the head; 0 = none
	chain      uint32 // next slot whose key has the same hash (collisions); 0 = none
}

const slotChunk = 1 << 16

// slotTable holds slots in fixed chunks, so a slot's address never changes and growing never
// copies. Slot 0 is reserved (0 means "none" in links). Loop goroutine only.
type slotTable struct {
	chunks [][]slot
	free   []uint32
	n      uint32 // slots ever handed out, including slot 0
}

func (t *slotTable) get(i uint32) *slot { return &t.chunks[i/slotChunk][i%slotChunk] }

func (t *slotTable) alloc() uint32 {
	if k := len(t.free); k > 0 {
		i := t.free[k-1]
		t.free = t.free[:k-1]
		return i
	}
	if t.n == 0 {
		t.chunks = append(t.chunks, make([]slot, slotChunk))
		t.n = 1 // slot 0 stays unused
	}
	i := t.n
	if i/slotChunk == uint32(len(t.chunks)) {
		t.chunks = append(t.chunks, make([]slot, slotChunk))
	}
	t.n++
	return i
}

func (t *slotTable) release(i uint32) {
	*t.get(i) = slot{}
	t.free = append(t.free, i)
}
