package client

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("user:%d:profile", i)
	}
	return ks
}

func nodes(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.0.%d:7070", i+1)
	}
	return addrs
}

// TestRendezvousEven: 100k keys spread within a few percent of even, for 3 and for 10 nodes
// (the sampling noise alone is about 0.5% and 1% of a share).
func TestRendezvousEven(t *testing.T) {
	for _, n := range []int{3, 10} {
		r := newRing(nodes(n))
		count := map[string]int{}
		for _, k := range keys(100_000) {
			count[r.owner(k, nil)]++
		}
		require.Len(t, count, n)
		even := 100_000.0 / float64(n)
		for addr, c := range count {
			dev := (float64(c) - even) / even
			t.Logf("%d nodes: %s has %d keys (%+.2f%%)", n, addr, c, 100*dev)
			assert.InDelta(t, 0, dev, 0.04, "node %s of %d", addr, n)
		}
	}
}

// TestRendezvousMovesOnlyWhatItMust: a node that leaves hands its keys to the others and no
// other key moves; a node that joins takes about 1/(n+1) of the keys, all for itself.
func TestRendezvousMovesOnlyWhatItMust(t *testing.T) {
	all := nodes(4)
	three, four := newRing(all[:3]), newRing(all)
	two := newRing(all[1:3])
	moved, joined := 0, 0
	ks := keys(100_000)
	for _, k := range ks {
		before, after := three.owner(k, nil), two.owner(k, nil)
		if before == all[0] {
			moved++
			assert.NotEqual(t, all[0], after)
		} else {
			require.Equal(t, before, after, "key %s moved though its node stayed", k)
		}
		if o := four.owner(k, nil); o != before {
			joined++
			require.Equal(t, all[3], o, "a join moved key %s between old nodes", k)
		}
	}
	assert.InDelta(t, 1.0/3, float64(moved)/float64(len(ks)), 0.02, "leave moved %d", moved)
	assert.InDelta(t, 1.0/4, float64(joined)/float64(len(ks)), 0.02, "join moved %d", joined)
}

// TestRendezvousSkip: skipping a node (down, or already tried) gives the key's next node,
// which is the node the key would have if the skipped one left.
func TestRendezvousSkip(t *testing.T) {
	all := nodes(5)
	r := newRing(all)
	for _, k := range keys(2000) {
		first := r.owner(k, nil)
		var rest []string
		for _, a := range all {
			if a != first {
				rest = append(rest, a)
			}
		}
		assert.Equal(t, newRing(rest).owner(k, nil), r.owner(k, func(a string) bool { return a == first }))
	}
	assert.Equal(t, "", r.owner("k", func(string) bool { return true }))
	assert.Equal(t, "", newRing(nil).owner("k", nil))
}

func BenchmarkRendezvousOwner(b *testing.B) {
	for _, n := range []int{3, 10, 50} {
		b.Run(fmt.Sprint(n, "nodes"), func(b *testing.B) {
			r := newRing(nodes(n))
			ks := keys(1024)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.owner(ks[i&1023], nil)
			}
		})
	}
}
