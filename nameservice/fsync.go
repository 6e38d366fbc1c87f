package nameservice

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Fsync is when a committed write reaches the disk: the operator's choice of durability, as
// Redis's appendfsync. Every mode writes a commit to the operating system (the engine's
// write-ahead log, one sequential write) before Commit returns, so a crash or kill -9 of the
// process loses nothing committed; the modes differ in what a power failure or a crash of the
// machine can take.
type Fsync int

// The modes.
const (
	// FsyncAlways: Commit returns once its writes are on disk (fsync'd). Nothing committed is
	// ever lost. The default.
	FsyncAlways Fsync = iota
	// FsyncEverySec: Commit returns once its writes are written to the operating system; a
	// background sync puts them on disk once a second. A power failure loses at most the last
	// second or so of commits (longer if a sync itself takes longer).
	FsyncEverySec
	// FsyncNo: Commit returns once its writes are written to the operating system; the
	// operating system writes them to disk when it chooses (Linux: within about 30 s), and
	// the engine syncs its log when it starts a new one (every few MiB of writes).
	FsyncNo
)

var fsyncNames = []string{"always", "everysec", "no"}

// String returns the mode's name, as -fsync takes it.
func (f Fsync) String() string {
	if f < 0 || int(f) >= len(fsyncNames) {
		return fmt.Sprintf("Fsync(%d)", int(f))
	}
	return fsyncNames[f]
}

// ParseFsync reads a mode's name: always, everysec or no.
func ParseFsync(s string) (Fsync, error) {
	for i, n := range fsyncNames {
		if s == n {
			return Fsync(i), nil
		}
	}
	return 0, fmt.Errorf("nameservice: fsync mode %q: want %s", s, strings.Join(fsyncNames, ", "))
}

// Set implements flag.Value, so that a flag of this type refuses an unknown mode at parse time.
func (f *Fsync) Set(s string) error {
	v, err := ParseFsync(s)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "nameservice: "))
	}
	*f = v
	return nil
}

// walFS is how Pebble keeps the modes other than always. Pebble writes a commit to its log
// file and then asks the file to sync, and the commit returns only when both are done
// (pebble.Sync); walFS answers a log file's sync at once, after the write, so a commit returns
// once its bytes are in the operating system, and syncs the log files itself: once a second
// (everysec) or only as each log file is closed (no; Pebble closes a log when it starts the
// next). Every other file (tables, manifest) syncs as Pebble asks.
type walFS struct {
	vfs.FS
	mu    sync.Mutex
	files map[*walFile]struct{} // the open log files; guarded by mu
}

// walFile is a log file whose syncs walFS decides.
type walFile struct {
	vfs.File
	fs    *walFS
	dirty atomic.Bool // written since its last real sync
	mu    sync.Mutex  // serialises a background sync with Close
}

func newWALFS(inner vfs.FS) *walFS {
	return &walFS{FS: inner, files: make(map[*walFile]struct{})}
}

// isWAL reports whether name is a Pebble write-ahead log (NNNNNN.log).
func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *walFS) track(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	w := &walFile{File: f, fs: fs}
	fs.mu.Lock()
	fs.files[w] = struct{}{}
	fs.mu.Unlock()
	return w, nil
}

// Create implements vfs.FS.
func (fs *walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !isWAL(name) {
		return fs.FS.Create(name, c)
	}
	return fs.track(fs.FS.Create(name, c))
}

// ReuseForWrite implements vfs.FS: Pebble recycles old log files.
func (fs *walFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !isWAL(name) {
		return fs.FS.ReuseForWrite(old, name, c)
	}
	return fs.track(fs.FS.ReuseForWrite(old, name, c))
}

// Sync is answered at once: the log's bytes were written before Pebble asked.
func (f *walFile) Sync() error { f.dirty.Store(true); return nil }

// SyncData is answered at once, as Sync.
func (f *walFile) SyncData() error { f.dirty.Store(true); return nil }

// Close syncs the log for real before closing it: a log Pebble is done with is durable.
func (f *walFile) Close() error {
	f.fs.mu.Lock()
	delete(f.fs.files, f)
	f.fs.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.File.SyncData()
	return errors.Join(err, f.File.Close())
}

// syncAll syncs every open log written since its last sync.
func (fs *walFS) syncAll() error {
	fs.mu.Lock()
	files := make([]*walFile, 0, len(fs.files))
	for f := range fs.files {
		files = append(files, f)
	}
	fs.mu.Unlock()
	var errs []error
	for _, f := range files {
		f.mu.Lock()
		if _, open := fs.openFile(f); open && f.dirty.Swap(false) {
			if err := f.File.SyncData(); err != nil {
				f.dirty.Store(true)
				errs = append(errs, err)
			}
		}
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (fs *walFS) openFile(f *walFile) (*walFile, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.files[f]
	return f, ok
}

// syncEvery runs syncAll every interval until stop is closed; done is closed when it returns.
// A failed sync is reported to onErr and tried again at the next tick.
func (fs *walFS) syncEvery(interval time.Duration, stop <-chan struct{}, done chan<- struct{}, onErr func(error)) {
	defer close(done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if err := fs.syncAll(); err != nil {
			onErr(err)
		}
	}
}
