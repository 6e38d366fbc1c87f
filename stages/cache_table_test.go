package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTableAgainstAMap: random inserts, values, removals and lookups agree with a plain map,
// and the accounting returns to nothing when the table is empty.
func TestTableAgainstAMap(t *testing.T) {
	tab := newTable()
	model := map[string]string{}
	slotOf := map[string]uint32{}
	rng := rand.New(rand.NewPCG(7, 7))
	for n := range 50_000 {
		key := fmt.Sprint("k", rng.IntN(2000))
		switch i := slotOf[key]; {
		case i == 0:
			i = tab.insert([]byte(key))
			slotOf[key] = i
			v := fmt.Sprint(n, "-", rng.IntN(1<<rng.IntN(20)))
			tab.setValue(i, []byte(v), uint64(n), 0)
			model[key] = v
		case rng.IntN(3) == 0:
			tab.remove(i)
			delete(slotOf, key)
			delete(model, key)
		default:
			v := fmt.Sprint(n)
			tab.setValue(i, []byte(v), uint64(n), 0)
			model[key] = v
		}
	}
	require.Equal(t, int64(len(model)), tab.items)
	for key, v := range model {
		i := tab.lookup([]byte(key))
		require.NotZero(t, i, key)
		assert.Equal(t, v, string(tab.valueOf(i)))
		assert.Equal(t, key, string(tab.keyOf(i)))
	}
	assert.Zero(t, tab.lookup([]byte("never")))
	for _, i := range slotOf {
		tab.remove(i)
	}
	assert.Zero(t, tab.items)
	assert.Zero(t, tab.bytes(), "an empty table accounts for nothing")
}

// TestTableHashCollisionsChain: keys whose hashes collide chain behind each other, and removing
// any one of them leaves the others found.
func TestTableHashCollisionsChain(t *testing.T) {
	tab := newTable()
	a, b, c := tab.insert([]byte("a")), tab.insert([]byte("b")), tab.insert([]byte("c"))
	// Force one hash on all three: chain them as a collision would.
	h := tab.slot(a).hash
	delete(tab.index, tab.slot(b).hash)
	delete(tab.index, tab.slot(c).hash)
	tab.slot(b).hash, tab.slot(c).hash = h, h
	tab.index[h] = c
	tab.slot(c).chain, tab.slot(b).chain, tab.slot(a).chain = b, a, 0
	assert.Equal(t, a, tab.lookup([]byte("a")), "found at the end of the chain")
	tab.remove(b) // the middle of the chain
	assert.Equal(t, c, tab.index[h])
	assert.Equal(t, a, tab.slot(c).chain)
	tab.remove(c) // the head
	assert.Equal(t, a, tab.index[h])
	assert.Equal(t, a, tab.lookup([]byte("a")))
}

// TestTableLRUOrder: oldest walks from the least recently used; touch moves a slot to the front.
func TestTableLRUOrder(t *testing.T) {
	tab := newTable()
	var slots []uint32
	for k := range 5 {
		slots = append(slots, tab.insert([]byte(fmt.Sprint(k))))
	}
	tab.touch(slots[0])
	var order []string
	tab.oldest(func(i uint32) bool { order = append(order, string(tab.keyOf(i))); return true })
	assert.Equal(t, []string{"1", "2", "3", "4", "0"}, order)
	order = order[:0]
	tab.oldest(func(i uint32) bool { // removing as it walks, as eviction does
		order = append(order, string(tab.keyOf(i)))
		tab.remove(i)
		return len(order) < 2
	})
	assert.Equal(t, []string{"1", "2"}, order)
	assert.Equal(t, int64(3), tab.items)
}

// TestTableExpiryBuckets: popDue returns what is due, earliest bucket first, and skips slots
// whose deadline moved or that were removed since they were filed.
func TestTableExpiryBuckets(t *testing.T) {
	tab := newTable()
	due := func(key string, at int64) (uint32, bool) {
		i := tab.insert([]byte(key))
		return i, tab.setValue(i, nil, 1, at)
	}
	_, earliest := due("late", 5_000)
	assert.True(t, earliest, "the first bucket is the earliest")
	_, earliest = due("early", 1_000)
	assert.True(t, earliest, "an earlier bucket becomes the earliest")
	moved, earliest := due("moved", 1_000)
	assert.False(t, earliest, "a bucket already there")
	gone, _ := due("gone", 1_050)
	tab.setValue(moved, nil, 2, 9_000) // filed again, later
	tab.remove(gone)
	at, ok := tab.nextDue()
	require.True(t, ok)
	assert.Equal(t, int64(1_000), at)
	var got []string
	tab.popDue(2_000, func(i uint32, s *slot) { got = append(got, string(tab.keyOf(i))) })
	assert.Equal(t, []string{"early"}, got)
	got = got[:0]
	tab.popDue(10_000, func(i uint32, s *slot) { got = append(got, string(tab.keyOf(i))) })
	assert.Equal(t, []string{"late", "moved"}, got)
	_, ok = tab.nextDue()
	assert.False(t, ok)
}

// TestTableDeleteAndUnload: a deleted slot is absent with its delete's version; an unloaded one
// keeps its key and forgets its value and version.
func TestTableDeleteAndUnload(t *testing.T) {
	tab := newTable()
	i := tab.insert([]byte("k"))
	tab.setValue(i, []byte("value"), 7, 0)
	tab.setAbsent(i, 1000)
	tab.setDeleted(i, 8)
	s := tab.slot(i)
	assert.Equal(t, stateAbsent, s.state)
	assert.Equal(t, uint64(8), s.version)
	assert.Empty(t, tab.valueOf(i))

	tab.setValue(i, []byte("again"), 9, 0)
	tab.unload(i)
	assert.Equal(t, stateLoading, s.state)
	assert.Zero(t, s.version)
	assert.Empty(t, tab.valueOf(i))
	assert.Equal(t, "k", string(tab.keyOf(i)))
	assert.Equal(t, i, tab.lookup([]byte("k")))
}
