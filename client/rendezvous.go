package client

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Rendezvous (highest random weight) hashing: a key belongs to the node whose hash mixed with
// the key's hash scores highest. Chosen over a ring with virtual nodes because:
//   - it is even without tuning: with n nodes each gets 1/n of the keys up to sampling noise
//     (about 0.5% for 100k keys over 3 nodes), where a ring needs hundreds of virtual nodes
//     per node to come close;
//   - a node that leaves moves only its own keys, each to the node that scored next for it,
//     and a node that joins takes only keys it now scores highest for: about 1/(n+1);
//   - the order of the other nodes is the key's failover order, with no extra structure;
//   - it needs no state beyond the member list. Its cost is O(n) per key, a few nanoseconds
//     per node, which is nothing next to a network round trip for the tens of nodes a
//     pipecache cluster has. (Jump hashing is O(log n) but can only remove the last bucket,
//     so it cannot let an arbitrary node leave.)

// ring is an immutable member set prepared for rendezvous hashing.
type ring struct {
	addrs  []string // sorted
	hashes []uint64 // hashes[i] is the hash of addrs[i]
}

func newRing(addrs []string) *ring {
	r := &ring{addrs: slices.Sorted(slices.Values(addrs))}
	r.addrs = slices.Compact(r.addrs)
	r.hashes = make([]uint64, len(r.addrs))
	for i, a := range r.addrs {
		r.hashes[i] = xxhash.Sum64String(a)
	}
	return r
}

// score is the weight of node i for a key hashed to kh: the two hashes combined through a
// 64-bit finaliser (splitmix64's), so that every bit of each affects every bit of the score.
func (r *ring) score(i int, kh uint64) uint64 {
	z := kh ^ r.hashes[i]
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// owner returns the address key belongs to among the nodes skip does not exclude ("" if none).
func (r *ring) owner(key string, skip func(addr string) bool) string {
	kh := xxhash.Sum64String(key)
	best, bestScore := -1, uint64(0)
	for i, a := range r.addrs {
		if skip != nil && skip(a) {
			continue
		}
		if s := r.score(i, kh); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ""
	}
	return r.addrs[best]
}
