package nameservice

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A full disk must not wedge the store: even a delete needs room (bbolt copies pages on write;
// Pebble appends to its log and flushes tables), and on a disk with no room at all deletes
// would fail too and nothing could free space through the cache. So the embedded store keeps a
// reserve: a file in the data directory of 1% of the file system (at least 1 MiB, at most
// 8 MiB), allocated when the store opens. This file is the reserve; when each engine counts
// the disk as full is its own (Bolt below, Pebble in pebble_disk.go).
//
// When the disk is full, half the reserve is released, and the store turns read-and-delete
// only: writes are refused at once (ErrDiskFull, "unavailable" to clients) while deletes go
// through in the room released. The whole reserve is taken back, and writes accepted as
// before, as soon as the file system has room for it twice over (and the engine's margin).
//
// Bolt: a commit that meets a full disk releases half the reserve and is retried with its
// deletes alone. Meanwhile a write is accepted only if it fits in the pages deletes freed
// inside the store's file (bbolt does not give those back to the file system) with a
// reserve's worth of them left over, so deletes keep room. That estimate can be wrong: pages
// freed while a read transaction is open are not reusable until it ends, and a large value
// needs contiguous pages, so a write that "fits" may grow the file instead (measured: 1 run in
// 3 of TestFullDiskStillDeletes under load, before the second half existed, a delete failed).
// So if a commit of deletes alone meets a full disk, the second half is released for them
// (and taken back when the file system has room for it).

// ErrDiskFull: the store's disk is full; only deletes are accepted until space is freed.
var ErrDiskFull = errors.New("nameservice: disk full: only deletes are accepted until space is freed")

// ReserveFile is the reserve's name in the data directory.
const ReserveFile = "reserve"

type reserve struct {
	path   string
	size   int64
	stage  int   // 0: the reserve held; 1: half of it released; 2: all of it released
	room   int64 // while full: bytes writes may still take in the store's free pages
	margin int64 // room beside the reserve the engine needs for its own work (Pebble: flushes)
}

// The stages of a reserve.
const (
	reserveHeld = iota // not full: writes as usual
	reserveHalf        // full: deletes, and writes within room
	reserveGone        // full even for deletes once: the same, with no reserve left
)

func newReserve(dir string) *reserve {
	r := &reserve{path: filepath.Join(dir, ReserveFile), size: 8 << 20}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		r.size = min(max(int64(st.Blocks)*st.Bsize/100, 1<<20), 8<<20)
	}
	if err := r.take(r.size); err != nil {
		r.stage = reserveGone // opened on a full disk: only deletes until there is room
		if !isDiskFull(err) {
			r.stage = reserveHeld // no reserve (a file system without fallocate): as before
		}
	}
	return r
}

// full reports whether the store is refusing writes that do not fit.
func (r *reserve) full() bool { return r.stage != reserveHeld }

// take allocates the reserve file at size bytes.
func (r *reserve) take(size int64) error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if size == r.size {
			os.Remove(r.path)
		}
		return fmt.Errorf("nameservice: disk reserve: %w", err)
	}
	return nil
}

// release frees the next part of the reserve after a commit met a full disk: half of it, or
// the rest.
func (r *reserve) release() {
	r.room = 0
	switch r.stage {
	case reserveHeld:
		if os.Truncate(r.path, r.size/2) != nil {
			os.Remove(r.path)
			r.stage = reserveGone
			return
		}
		r.stage = reserveHalf
	default:
		os.Remove(r.path)
		r.stage = reserveGone
	}
}

// refill, after a commit while full, takes the reserve back if the file system has room for
// it twice over (and so ends the full state), or takes back its second half if there is room
// for that twice over; while full it sets how much writes may take of the store's free pages
// (storeFree bytes), a reserve's worth left for deletes.
func (r *reserve) refill(storeFree int64) {
	avail, err := availBytes(filepath.Dir(r.path))
	if err != nil {
		avail = -1
	}
	switch {
	case avail >= 2*r.size+r.margin && r.take(r.size) == nil:
		r.stage = reserveHeld
		return
	case r.stage == reserveGone && avail >= r.size+r.margin && r.take(r.size/2) == nil:
		r.stage = reserveHalf
	}
	if r.full() {
		r.room = max(0, storeFree-r.size)
	}
}

// lost records that the reserve file was removed behind the reserve's back (pebbleDisk's
// ENOSPC handler): all of it is released.
func (r *reserve) lost() {
	r.stage, r.room = reserveGone, 0
}

// availBytes returns the bytes an unprivileged writer may still use on dir's file system.
func availBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// admit reports whether a write of about n bytes may go while full, and takes it from room.
func (r *reserve) admit(n int) bool {
	// Generously: a value's overflow pages must be contiguous, its leaf and branch pages are
	// copied, and the expiry index has its own.
	cost := 4 * int64(n+4096)
	if !r.full() || cost > r.room {
		return false
	}
	r.room -= cost
	return true
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
