package nameservice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// Bolt is the store on a bbolt database: a single file, copy-on-write B+tree, where a Commit of
// many writes (group commit) is one transaction. Each commit writes its copied pages and syncs,
// then writes the meta page and syncs again.
//
// Layout (records as record.go encodes them):
//
//	data:   key                      -> record
//	expiry: expireAt (8, BE) | key   -> (empty)     index for the sweeper
//	meta:   "maxversion"             -> version (8)
var (
	bucketData   = []byte("data")
	bucketExpiry = []byte("expiry")
	bucketMeta   = []byte("meta")
	keyMaxVer    = []byte("maxversion")
)

// FileName is the bbolt database file inside the data directory.
const FileName = "pipecache.db"

// Bolt is the Store on a bbolt file.
type Bolt struct {
	db      *bolt.DB
	mu      sync.Mutex // serialises commits (the committer is one goroutine; tests may be more)
	reserve *reserve   // disk space kept for deletes (reserve.go); guarded by mu
}

// OpenBolt opens (creating if needed) the bbolt store in dir. The daemon no longer stores its
// data in bbolt (Open migrates such a directory to Pebble): this is for the migration's tests
// and for comparing the engines.
func OpenBolt(dir string) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("nameservice: data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o640, &bolt.Options{
		Timeout:        time.Second, // another process holding the file: fail, do not hang
		NoFreelistSync: true,        // the freelist is rebuilt on open; commits write less
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("nameservice: open %s: %w: in use by another process (another pipecached on the same -data-dir?)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nameservice: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketData, bucketExpiry, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("nameservice: init %s: %w", path, err)
	}
	return &Bolt{db: db, reserve: newReserve(dir)}, nil
}

// Get implements Store.
func (s *Bolt) Get(key string, nowMs int64) (r Record, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketData).Get([]byte(key))
		if v == nil {
			return nil
		}
		r, err = decodeRecord(v)
		ok = err == nil && !r.Expired(nowMs)
		return err
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("nameservice: get %q: %w", key, err)
	}
	return r, ok, nil
}

// Commit implements Store: one bbolt transaction, one fsync, for every write bbolt accepts.
func (s *Bolt) Commit(writes []Write) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.commit(writes, false)
	for try := 0; err != nil && isDiskFull(err) && try < 2; try++ {
		// The disk is full: release (more of) the reserve, so that the deletes of this group
		// (and of the next ones) have room, and commit them alone (reserve.go).
		s.reserve.release()
		for i := range writes {
			writes[i].Err = nil
		}
		err = s.commit(writes, true)
	}
	if s.reserve.full() {
		// Free pages only: FreeAlloc counts pending ones too, which a reader may still hold.
		s.reserve.refill(int64(s.db.Stats().FreePageN) * int64(s.db.Info().PageSize))
	}
	return err
}

// commit commits writes in one transaction: those that are valid and, while the disk is full,
// those the reserve admits (none but deletes if deletesOnly).
func (s *Bolt) commit(writes []Write, deletesOnly bool) error {
	valid := 0
	full := deletesOnly || s.reserve.full()
	for i := range writes {
		w := &writes[i]
		if w.Err = checkWrite(w); w.Err == nil && full && !w.Delete &&
			(deletesOnly || !s.reserve.admit(len(w.Key)+len(w.Record.Value))) {
			w.Err = ErrDiskFull
		}
		if w.Err == nil {
			valid++
		}
	}
	if valid == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		data, exp, meta := tx.Bucket(bucketData), tx.Bucket(bucketExpiry), tx.Bucket(bucketMeta)
		maxVer := uint64(0)
		if v := meta.Get(keyMaxVer); len(v) == 8 {
			maxVer = binary.BigEndian.Uint64(v)
		}
		for i := range writes {
			w := &writes[i]
			if w.Err != nil {
				continue
			}
			k := []byte(w.Key)
			if old := data.Get(k); len(old) >= recordHeader {
				if at := int64(binary.BigEndian.Uint64(old[8:])); at != 0 {
					if err := exp.Delete(expiryKey(at, w.Key)); err != nil {
						return err
					}
				}
			}
			if w.Delete {
				if err := data.Delete(k); err != nil {
					return err
				}
			} else {
				if err := data.Put(k, encodeRecord(&w.Record)); err != nil {
					return err
				}
				if w.Record.ExpireAt != 0 {
					if err := exp.Put(expiryKey(w.Record.ExpireAt, w.Key), nil); err != nil {
						return err
					}
				}
			}
			maxVer = max(maxVer, w.Record.Version)
		}
		return meta.Put(keyMaxVer, binary.BigEndian.AppendUint64(nil, maxVer))
	})
	if err != nil {
		return fmt.Errorf("nameservice: commit of %d writes: %w", len(writes), err)
	}
	return nil
}

// MaxVersion implements Store.
func (s *Bolt) MaxVersion() (v uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keyMaxVer); len(b) == 8 {
			v = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	return v, err
}

// Scan implements Store.
func (s *Bolt) Scan(prefix, from string, nowMs int64, fn func(key string, r Record) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketData).Cursor()
		p := []byte(prefix)
		start := p
		if from > prefix {
			start = []byte(from)
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("nameservice: scan at %q: %w", k, err)
			}
			if !r.Expired(nowMs) && !fn(string(k), r) {
				return nil
			}
		}
		return nil
	})
}

// SweepExpired implements Store: it walks the expiry index from the oldest deadline.
func (s *Bolt) SweepExpired(nowMs int64, limit int) (n int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		data, exp := tx.Bucket(bucketData), tx.Bucket(bucketExpiry)
		c := exp.Cursor()
		var done [][]byte
		for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
			at := int64(binary.BigEndian.Uint64(k))
			if at > nowMs {
				break
			}
			key := k[8:]
			// Delete the record only if it still carries this deadline (a later put moved it).
			if v := data.Get(key); len(v) >= recordHeader && int64(binary.BigEndian.Uint64(v[8:])) == at {
				if err := data.Delete(key); err != nil {
					return err
				}
				n++
			}
			done = append(done, bytes.Clone(k))
		}
		for _, k := range done {
			if err := exp.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// Close implements Store.
func (s *Bolt) Close() error { return s.db.Close() }
