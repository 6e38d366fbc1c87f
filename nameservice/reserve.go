package nameservice

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A full disk must not wedge the store: bbolt writes copy-on-write, so even a delete needs a few
// new pages, and on a disk with no room at all deletes fail too and nothing can free space
// through the cache. So the embedded store keeps a reserve: a file in the data directory of 1%
// of the file system (at least 1 MiB, at most 8 MiB), allocated when the store opens. When a
// commit meets a full disk the reserve is released and the store turns read-and-delete only:
// writes are refused at once (ErrDiskFull, "unavailable" to clients) while deletes go through
// in the room the reserve left. Meanwhile a write is accepted only if it fits in the pages
// deletes freed inside the store's file (bbolt does not give those back to the file system)
// with a reserve's worth of them left over, so deletes keep room; the reserve file is taken back,
// and writes accepted as before, as soon as the file system has room for it twice over.

// ErrDiskFull: the store's disk is full; only deletes are accepted until space is freed.
var ErrDiskFull = errors.New("nameservice: disk full: only deletes are accepted until space is freed")

// ReserveFile is the reserve's name in the data directory.
const ReserveFile = "reserve"

type reserve struct {
	path string
	size int64
	held bool  // the reserve file exists
	full bool  // the disk was found full: writes only within room (below)
	room int64 // while full: bytes writes may still take in the store's free pages
}

func newReserve(dir string) *reserve {
	r := &reserve{path: filepath.Join(dir, ReserveFile), size: 8 << 20}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		r.size = min(max(int64(st.Blocks)*st.Bsize/100, 1<<20), 8<<20)
	}
	if err := r.take(); err != nil {
		r.full = isDiskFull(err) // opened on a full disk: only deletes until there is room
	}
	return r
}

// take allocates the reserve file.
func (r *reserve) take() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, r.size); err != nil {
		os.Remove(r.path)
		return fmt.Errorf("nameservice: disk reserve: %w", err)
	}
	r.held = true
	return nil
}

// release frees the reserve after a commit met a full disk; it reports whether there was one.
func (r *reserve) release() bool {
	r.full = true
	if !r.held {
		return false
	}
	os.Remove(r.path)
	r.held = false
	return true
}

// refill, after a commit while full, takes the reserve file back if the file system has room
// for it twice over (and so ends the full state), or else sets how much writes may take of the
// store's free pages (storeFree bytes), a reserve's worth left for deletes.
func (r *reserve) refill(storeFree int64) {
	var st unix.Statfs_t
	if unix.Statfs(filepath.Dir(r.path), &st) == nil && int64(st.Bavail)*st.Bsize >= 2*r.size && r.take() == nil {
		r.full = false
		return
	}
	r.room = max(0, storeFree-r.size)
}

// admit reports whether a write of about n bytes may go while full, and takes it from room.
func (r *reserve) admit(n int) bool {
	// Generously: a value's overflow pages must be contiguous, its leaf and branch pages are
	// copied, and the expiry index has its own.
	cost := 4 * int64(n+4096)
	if cost > r.room {
		return false
	}
	r.room -= cost
	return true
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
