package stages

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassesCoverEverySize(t *testing.T) {
	assert.Greater(t, classSizes[numClasses-1], 4<<20+512, "the largest class must hold the largest value and key")
	for n := 1; n < 5<<20; n += 1 + n/7 {
		ci := classFor(n)
		require.GreaterOrEqual(t, classSizes[ci], n, "size %d", n)
		if ci > 0 {
			require.Less(t, classSizes[ci-1], n, "size %d: not the smallest class", n)
		}
	}
}

// TestArenaAgainstModel allocates, writes, frees and reuses cells at random and checks every
// live cell still holds what was written to it.
func TestArenaAgainstModel(t *testing.T) {
	a := newArena()
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[cellRef][]byte{}
	for i := range 20000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			for r := range live {
				a.free(r)
				delete(live, r)
				break
			}
			continue
		}
		n := 1 + rng.IntN(1<<rng.IntN(15))
		r := a.alloc(n)
		if _, dup := live[r]; dup {
			t.Fatalf("live cell %x handed out twice", r)
		}
		data := bytes.Repeat([]byte{byte(i)}, n)
		copy(a.cell(r), data)
		live[r] = data
	}
	var want int64
	for r, data := range live {
		require.Equal(t, data, a.cell(r)[:len(data)])
		want += int64(a.cellSize(r))
	}
	assert.Equal(t, want, a.inUse)
}

func TestSlotTableReusesAndNeverMoves(t *testing.T) {
	var st slotTable
	first := st.alloc()
	assert.Equal(t, uint32(1), first, "slot 0 is reserved")
	p := st.get(first)
	p.version = 7
	for range slotChunk + 10 { // grow past a chunk
		st.alloc()
	}
	assert.Same(t, p, st.get(first), "growing must not move slots")
	st.release(first)
	assert.Equal(t, first, st.alloc())
	assert.Zero(t, st.get(first).version, "a reused slot starts empty")
}
