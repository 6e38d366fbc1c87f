package nameservice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble is the embedded Store: a log-structured merge tree (github.com/cockroachdb/pebble),
// where a Commit of many writes is one batch appended to the write-ahead log, one sequential
// write and (with FsyncAlways) one fsync, then applied in memory; tables are written and merged
// in the background. BENCHMARKS.md ("The embedded store") has the measurements that chose it
// over bbolt and Badger.
//
// Layout, one key space split by a prefix byte (records as record.go encodes them):
//
//	'd' key                        -> record
//	'x' expireAt (8, BE) key       -> (empty): the expiry index, for the sweeper
//	'm' "maxversion"               -> version (8, BE)
type Pebble struct {
	db   *pebble.DB
	dir  string // the data directory
	log  *slog.Logger
	wo   *pebble.WriteOptions
	wal  *walFS    // nil with FsyncAlways
	lock io.Closer // the data directory's lock
	// ctx ends the background goroutines (log syncs, compactions of deleted keys) at Close.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	// closeMu keeps Close from closing the engine under a call in progress (Pebble panics on a
	// closed DB): every call holds it for reading, Close for writing.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	mu     sync.Mutex // serialises Commit and SweepExpired (each reads the index it updates)
	maxVer uint64     // the highest version committed; guarded by mu
	ttl    bool       // the expiry index may hold entries; guarded by mu
	group  map[string]int64
	failed error       // a commit failed: the engine's state is unknown; guarded by mu
	disk   *pebbleDisk // the full-disk guard (pebble_disk.go); guarded by mu
	kbuf   []byte      // scratch for keys; guarded by mu
}

// Options configure the embedded store. The zero value is the default.
type Options struct {
	Fsync  Fsync        // when a committed write is on disk; default FsyncAlways
	Logger *slog.Logger // the engine's events; nil: discarded
}

// PebbleDir is the engine's directory inside the data directory.
const PebbleDir = "pebble"

const (
	prefixData   = 'd'
	prefixExpiry = 'x'
	prefixMeta   = 'm'
)

var pebbleKeyMaxVer = []byte("mmaxversion")

var discardLogger = slog.New(slog.DiscardHandler)

// lockDir locks the data directory against another process (or another store in this one).
func lockDir(dir string) (io.Closer, error) {
	l, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("nameservice: lock %s: %w: in use by another process (another pipecached on the same -data-dir?)", dir, err)
	}
	return l, nil
}

// openPebbleLocked opens the engine in path for the locked data directory dir.
func openPebbleLocked(dir, path string, o Options) (*Pebble, error) {
	if o.Logger == nil {
		o.Logger = discardLogger
	}
	s := &Pebble{dir: dir, log: o.Logger, group: make(map[string]int64), wo: pebble.Sync}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.disk = newPebbleDisk(s)
	fs := vfs.OnDiskFull(vfs.Default, s.disk.onENOSPC)
	if o.Fsync != FsyncAlways {
		s.wal = newWALFS(fs)
		fs = s.wal
	}
	db, err := pebble.Open(path, s.pebbleOptions(fs))
	if err != nil {
		return nil, fmt.Errorf("nameservice: open %s: %w", path, err)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if o.Fsync == FsyncEverySec {
		s.bg.Go(func() { s.syncLogs(time.Second) })
	}
	return s, nil
}

func (s *Pebble) pebbleOptions(fs vfs.FS) *pebble.Options {
	o := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(s.disk.memTable),
		// A block cache that holds a working set: every write of a store with deadlines
		// reads the key's record first (the expiry index), and with Pebble's default
		// 8 MiB that read went to the table file and decompressed a block each time
		// (BENCHMARKS.md: 27 -> 12 µs of CPU per write).
		CacheSize: 64 << 20,
		Logger:    pebbleLogger{s.log},
	}
	o.TargetFileSizes[0] = s.disk.l0File()
	// Bloom filters: a load of a key the store does not have (a cache miss for an absent
	// key) reads no table that cannot hold it.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	o.EnsureDefaults()
	return o
}

// load reads what Commit keeps in memory: the highest version, and whether any record expires.
func (s *Pebble) load() error {
	v, closer, err := s.db.Get(pebbleKeyMaxVer)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("nameservice: read max version: %w", err)
	default:
		if len(v) == 8 {
			s.maxVer = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixExpiry}, UpperBound: []byte{prefixExpiry + 1}})
	if err != nil {
		return fmt.Errorf("nameservice: read expiry index: %w", err)
	}
	s.ttl = it.First()
	return it.Close()
}

// syncLogs syncs the write-ahead log every interval (FsyncEverySec), until Close.
func (s *Pebble) syncLogs(interval time.Duration) {
	done := make(chan struct{})
	s.wal.syncEvery(interval, s.ctx.Done(), done, func(err error) {
		s.log.Error("store: syncing the write-ahead log failed; will retry", "err", err)
	})
	<-done
}

func dataKey(b []byte, key string) []byte { return append(append(b[:0], prefixData), key...) }

func indexKey(b []byte, expireAt int64, key string) []byte {
	return appendExpiryKey(append(b[:0], prefixExpiry), expireAt, key)
}

// enter begins a call: false (and ErrClosed) if the store is closed. The caller calls
// s.closeMu.RUnlock when it is done.
func (s *Pebble) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Get implements Store.
func (s *Pebble) Get(key string, nowMs int64) (r Record, ok bool, err error) {
	if err := s.enter(); err != nil {
		return Record{}, false, err
	}
	defer s.closeMu.RUnlock()
	v, closer, err := s.db.Get(dataKey(make([]byte, 0, 1+len(key)), key))
	if errors.Is(err, pebble.ErrNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("nameservice: get %q: %w", key, err)
	}
	r, err = decodeRecord(v)
	closer.Close()
	if err != nil {
		return Record{}, false, fmt.Errorf("nameservice: get %q: %w", key, err)
	}
	return r, !r.Expired(nowMs), nil
}

// Commit implements Store: one batch, one append to the write-ahead log (and one fsync with
// FsyncAlways) for every write the store accepts.
func (s *Pebble) Commit(writes []Write) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	s.disk.admit(writes)
	b := s.db.NewBatch()
	defer b.Close()
	n, maxVer, ttl, err := s.stage(b, writes)
	if err != nil || n == 0 {
		return err
	}
	if maxVer > s.maxVer {
		b.Set(pebbleKeyMaxVer, binary.BigEndian.AppendUint64(nil, maxVer), nil)
	}
	if err := b.Commit(s.wo); err != nil {
		// Pebble applies a batch in memory before its log write is known to have failed, and
		// a failed log is never written again: what this store would serve is no longer what
		// is on disk. Refuse everything until a restart recovers from the disk.
		s.failed = fmt.Errorf("%w: a commit failed (%w); restart the daemon to recover from the disk", ErrUnavailable, err)
		s.log.Error("store: commit failed; refusing every call until restarted", "writes", n, "err", err)
		return fmt.Errorf("nameservice: commit of %d writes: %w", n, s.failed)
	}
	s.maxVer, s.ttl = maxVer, s.ttl || ttl
	s.disk.compactDeleted(writes)
	return nil
}

// stage puts into b every write without an Err, keeping the expiry index: it returns how many,
// the highest version among them, and whether any has a deadline.
func (s *Pebble) stage(b *pebble.Batch, writes []Write) (n int, maxVer uint64, ttl bool, err error) {
	clear(s.group)
	maxVer = s.maxVer
	for i := range writes {
		w := &writes[i]
		if w.Err != nil {
			continue
		}
		old, err := s.deadline(w.Key)
		if err != nil {
			return 0, 0, false, fmt.Errorf("nameservice: commit: %w", err)
		}
		if old != 0 {
			s.kbuf = indexKey(s.kbuf, old, w.Key)
			b.Delete(s.kbuf, nil)
		}
		s.kbuf = dataKey(s.kbuf, w.Key)
		if w.Delete {
			b.Delete(s.kbuf, nil)
			s.group[w.Key] = 0
		} else {
			op := b.SetDeferred(len(s.kbuf), recordHeader+len(w.Record.Value))
			copy(op.Key, s.kbuf)
			appendRecord(op.Value[:0], &w.Record)
			op.Finish()
			if at := w.Record.ExpireAt; at != 0 {
				s.kbuf = indexKey(s.kbuf, at, w.Key)
				b.Set(s.kbuf, nil, nil)
				ttl = true
			}
			s.group[w.Key] = w.Record.ExpireAt
		}
		maxVer = max(maxVer, w.Record.Version)
		n++
	}
	return n, maxVer, ttl, nil
}

// deadline returns the deadline key has now (0: none, or no such key): as an earlier write of
// the batch being built set it, or as stored. Without any record that expires, there is
// nothing to read.
func (s *Pebble) deadline(key string) (int64, error) {
	if at, ok := s.group[key]; ok {
		return at, nil
	}
	if !s.ttl {
		return 0, nil
	}
	s.kbuf = dataKey(s.kbuf, key)
	v, closer, err := s.db.Get(s.kbuf)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %q: %w", key, err)
	}
	at := recordExpireAt(v)
	closer.Close()
	return at, nil
}

// raiseMaxVersion makes v the highest version committed if it is higher (a migration carries
// the old store's over: deletes raise it too).
func (s *Pebble) raiseMaxVersion(v uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v <= s.maxVer {
		return nil
	}
	if err := s.db.Set(pebbleKeyMaxVer, binary.BigEndian.AppendUint64(nil, v), s.wo); err != nil {
		return fmt.Errorf("nameservice: max version: %w", err)
	}
	s.maxVer = v
	return nil
}

// MaxVersion implements Store.
func (s *Pebble) MaxVersion() (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxVer, nil
}

// Scan implements Store.
func (s *Pebble) Scan(prefix, from string, nowMs int64, fn func(key string, r Record) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	lo := dataKey(nil, prefix)
	hi := upperBound(lo)
	if from > prefix {
		lo = dataKey(nil, from)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("nameservice: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		r, err := decodeRecord(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("nameservice: scan at %q: %w", it.Key()[1:], err)
		}
		if !r.Expired(nowMs) && !fn(string(it.Key()[1:]), r) {
			break
		}
	}
	return it.Close()
}

// upperBound returns the first key after every key that starts with p (p's first byte is a
// prefix below 0xff, so there is one).
func upperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	panic("nameservice: no upper bound")
}

// SweepExpired implements Store: it walks the expiry index from the oldest deadline. Its
// deletes are not synced by themselves (an expired record reads as absent either way); the
// next synced commit carries them to disk.
func (s *Pebble) SweepExpired(nowMs int64, limit int) (n int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil || !s.ttl {
		return 0, s.failed
	}
	clear(s.group) // deadline reads the store, not the last commit's writes
	hi := binary.BigEndian.AppendUint64([]byte{prefixExpiry}, uint64(nowMs)+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixExpiry}, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("nameservice: sweep: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		k := it.Key()
		at, key := int64(binary.BigEndian.Uint64(k[1:9])), string(k[9:])
		// Delete the record only if it still carries this deadline (a later put moved it).
		if cur, err := s.deadline(key); err != nil {
			it.Close()
			return 0, fmt.Errorf("nameservice: sweep: %w", err)
		} else if cur == at {
			b.Delete(dataKey(s.kbuf, key), nil)
			n++
		}
		b.Delete(k, nil)
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("nameservice: sweep: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		s.failed = fmt.Errorf("%w: a sweep failed (%w); restart the daemon to recover from the disk", ErrUnavailable, err)
		return 0, s.failed
	}
	return n, nil
}

// Close implements Store: it waits for calls in progress, stops the background work and
// closes the engine, which writes and syncs what it holds.
func (s *Pebble) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	s.bg.Wait()
	err := s.db.Close()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// pebbleLogger passes the engine's messages to the store's logger: its routine ones at debug.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble: fatal: " + msg)
	panic("pebble: " + msg)
}
