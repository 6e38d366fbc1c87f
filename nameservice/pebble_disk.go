package nameservice

import (
	"bytes"
	"math"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A full disk and Pebble. Pebble applies a batch in memory before its log write is known to
// have succeeded, and a log that failed once is never written again (the next commit panics):
// so the store must not let the log meet a full disk. The guard, for each commit:
//
//   - Before it, the file system must have room for the commit's bytes and a margin beside
//     the reserve (reserve.go): two memtables' worth for Pebble's own work and, near full,
//     whatever Pebble holds in memory to write to tables. If not, the disk is full: half the reserve is released and, as with bbolt,
//     the store refuses writes (ErrDiskFull) while deletes go through in the room released.
//   - If Pebble meets ENOSPC anyway (a table flush, a compaction, the log past its
//     preallocation), vfs.OnDiskFull calls onENOSPC, which removes the rest of the reserve
//     and lets Pebble retry its write once, in the room released.
//   - Deletes in an LSM free space only when compactions drop what they delete: while full,
//     the range of keys deleted is compacted in the background.
//   - The whole reserve is taken back, and writes accepted, when the file system has room for
//     the reserve twice over and the margin.
//
// The margin is what Pebble needs for its own work: two memtables' flushes and a compaction
// into Lbase (eight L0 tables' worth; with the defaults 24 MiB). The memtable, and so the
// margin, is scaled to the file system: 1/64 of it, within 256 KiB .. 4 MiB (Pebble's
// default), so that a small volume is not all margin. Compactions may still meet a full disk
// (Pebble retries them); the log and the flushes do not.
type pebbleDisk struct {
	s        *Pebble
	res      *reserve // guarded by s.mu
	memTable int64
	margin   int64       // room for Pebble's own work beside what it has yet to flush
	gone     atomic.Bool // onENOSPC removed the reserve file; admit reads it
	// The range of keys deleted while full and not yet compacted; guarded by s.mu.
	lo, hi     []byte
	compacting bool // guarded by s.mu
}

func newPebbleDisk(s *Pebble) *pebbleDisk {
	d := &pebbleDisk{s: s, memTable: 4 << 20}
	var st unix.Statfs_t
	if unix.Statfs(s.dir, &st) == nil {
		d.memTable = min(max(int64(st.Blocks)*st.Bsize/64, 256<<10), 4<<20)
	}
	d.res = newReserve(s.dir)
	// Room for two memtables' flushes and for compactions: Lbase's files are twice L0's
	// (pebbleOptions), and a compaction into Lbase rewrites a few of them.
	d.margin = 2*d.memTable + 8*d.l0File()
	d.res.margin = d.margin
	return d
}

// l0File is the target size of the tables Pebble writes to L0: a memtable's, at most Pebble's
// default 2 MiB.
func (d *pebbleDisk) l0File() int64 { return min(d.memTable, 2<<20) }

// onENOSPC is Pebble's disk-full callback (vfs.OnDiskFull): it runs on whichever goroutine met
// ENOSPC, perhaps under a Commit holding s.mu, so it takes no lock: it removes the reserve
// file and leaves a note for the next commit.
func (d *pebbleDisk) onENOSPC() {
	if os.Remove(d.res.path) == nil {
		d.s.log.Warn("store: the engine met a full disk: the disk reserve is released; writes are refused, deletes accepted")
	}
	d.gone.Store(true)
}

// admit sets the Err of every write the store refuses: by itself (checkWrite) or, while the
// disk is full, every write but deletes. s.mu held.
func (d *pebbleDisk) admit(writes []Write) {
	if d.gone.Swap(false) {
		d.res.lost()
	}
	need := putBytes(writes)
	avail, err := availBytes(d.s.dir)
	if err != nil {
		avail = math.MaxInt64 // no statfs: Pebble's ENOSPC handler is the only guard
	}
	margin := d.margin
	if avail < 4*d.margin+need {
		// Near full: what Pebble holds in memory (memtables, large batches) it will write
		// to tables, and that must fit too.
		margin += int64(d.s.db.Metrics().MemTable.Size)
	}
	// Writes are taken again with half a margin more free than when they stopped: Pebble's
	// compactions come and go, and the store should not flap.
	d.res.margin = margin + d.margin/2
	switch {
	case d.res.full():
		d.res.refill(0) // freed space goes back to the file system: nothing to count inside
		if !d.res.full() {
			d.s.log.Info("store: disk has room again: writes are accepted")
		}
	case need > 0 && avail < need+margin:
		d.res.release()
		d.s.log.Warn("store: disk full: writes are refused, deletes accepted, until space is freed")
	}
	full := d.res.full()
	for i := range writes {
		w := &writes[i]
		if w.Err = checkWrite(w); w.Err == nil && full && !w.Delete {
			w.Err = ErrDiskFull
		}
	}
}

// putBytes is about what writes add to the log.
func putBytes(writes []Write) int64 {
	n := int64(0)
	for i := range writes {
		if !writes[i].Delete {
			n += int64(len(writes[i].Key) + len(writes[i].Record.Value) + 64)
		}
	}
	return n
}

// compactDeleted, after a commit while the disk is full, compacts the range of keys deleted so
// far in the background (one compaction at a time), so that their space is freed. s.mu held.
func (d *pebbleDisk) compactDeleted(writes []Write) {
	if !d.res.full() {
		return
	}
	for i := range writes {
		if w := &writes[i]; w.Delete && w.Err == nil {
			k := dataKey(nil, w.Key)
			if d.lo == nil || bytes.Compare(k, d.lo) < 0 {
				d.lo = k
			}
			if d.hi == nil || bytes.Compare(k, d.hi) > 0 {
				d.hi = k
			}
		}
	}
	if d.compacting || d.lo == nil {
		return
	}
	lo, hi := d.lo, append(d.hi, 0) // Compact's end is exclusive
	d.lo, d.hi, d.compacting = nil, nil, true
	s := d.s
	s.bg.Go(func() {
		err := s.db.Compact(s.ctx, lo, hi, false)
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("store: compacting deleted keys on a full disk", "err", err)
		}
		s.mu.Lock()
		d.compacting = false
		s.mu.Unlock()
	})
}
