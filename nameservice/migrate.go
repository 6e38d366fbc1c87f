package nameservice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// Open opens the embedded store in dir with the default options (OpenWith).
func Open(dir string) (*Pebble, error) { return OpenWith(dir, Options{}) }

// OpenWith opens (creating if needed) the embedded store in dir: a Pebble store. A data
// directory written by a version that stored its data in bbolt (FileName) is migrated first,
// which the log says.
//
// The migration is crash-safe: it copies into a directory of its own (MigratingDir), reading
// the bbolt file without changing it; once the copy is complete and synced it renames that
// directory to PebbleDir (the commit point), and then renames the bbolt file to
// FileName+".migrated", kept for the operator to delete. A migration interrupted before the
// rename starts over at the next start; one interrupted after it only sets the file aside.
func OpenWith(dir string, o Options) (*Pebble, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("nameservice: data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openMigrated(dir, o)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// MigratingDir is where a migration from bbolt builds the Pebble store, inside the data
// directory, until it is complete.
const MigratingDir = "pebble.migrating"

// openMigrated migrates a bbolt file in the locked dir if there is one, then opens the store.
func openMigrated(dir string, o Options) (*Pebble, error) {
	if o.Logger == nil {
		o.Logger = discardLogger
	}
	old, final := filepath.Join(dir, FileName), filepath.Join(dir, PebbleDir)
	switch _, err := os.Stat(old); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("nameservice: %w", err)
	default:
		if _, err := os.Stat(final); errors.Is(err, os.ErrNotExist) {
			if err := migrateBolt(dir, o); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, fmt.Errorf("nameservice: %w", err)
		}
		if err := setAside(dir, old, o); err != nil {
			return nil, err
		}
	}
	return openPebbleLocked(dir, final, o)
}

// migrateBolt copies the bbolt store of dir into a new Pebble store and renames it into place.
func migrateBolt(dir string, o Options) error {
	start := time.Now()
	tmp := filepath.Join(dir, MigratingDir)
	if err := os.RemoveAll(tmp); err != nil { // a migration interrupted before: start over
		return fmt.Errorf("nameservice: migration: %w", err)
	}
	src, err := openBoltReadOnly(filepath.Join(dir, FileName))
	if err != nil {
		return err
	}
	defer src.Close()
	o.Logger.Info("store: migrating the data directory from bbolt to pebble; the bbolt file is kept until the copy is complete and synced",
		"from", filepath.Join(dir, FileName), "to", filepath.Join(dir, PebbleDir))
	dst, err := openPebbleLocked(dir, tmp, Options{Fsync: FsyncNo, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("nameservice: migration: %w", err)
	}
	n, err := copyBolt(src, dst, o)
	if err == nil {
		err = dst.db.Flush() // the copy into synced tables, not only the log
	}
	err = errors.Join(err, dst.Close())
	if err != nil {
		return fmt.Errorf("nameservice: migration from bbolt (it starts over at the next start; the bbolt file is unchanged): %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, PebbleDir)); err != nil {
		return fmt.Errorf("nameservice: migration: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("nameservice: migration: %w", err)
	}
	o.Logger.Info("store: migration from bbolt complete", "records", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func openBoltReadOnly(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("nameservice: open %s: %w: in use by another process (a pipecached of an earlier version on the same -data-dir?)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nameservice: open %s to migrate it: %w", path, err)
	}
	return db, nil
}

// migrationBatch is how many records each commit of a migration copies.
const migrationBatch = 4096

// copyBolt commits every record of src into dst, in batches, with the expiry index, and
// carries the highest version over. It returns how many records it copied.
func copyBolt(src *bolt.DB, dst *Pebble, o Options) (n int, err error) {
	var maxVer uint64
	err = src.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(keyMaxVer); len(v) == 8 {
				maxVer = binary.BigEndian.Uint64(v)
			}
		}
		if data := tx.Bucket(bucketData); data != nil {
			n, err = copyRecords(data, dst, o.Logger)
		}
		return err
	})
	if err != nil {
		return n, err
	}
	return n, dst.raiseMaxVersion(maxVer)
}

// copyRecords copies the records of bbolt's data bucket, migrationBatch per commit, logging
// its progress every tenth.
func copyRecords(data *bolt.Bucket, dst *Pebble, log *slog.Logger) (n int, err error) {
	total := data.Stats().KeyN
	next := migrationProgress(total)
	ws := make([]Write, 0, migrationBatch)
	c := data.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeRecord(v)
		if err != nil {
			return n, fmt.Errorf("record %q: %w", k, err)
		}
		if ws = append(ws, Write{Key: string(k), Record: r}); len(ws) < cap(ws) {
			continue
		}
		if err := commitAll(dst, ws); err != nil {
			return n, err
		}
		n, ws = n+len(ws), ws[:0]
		if n >= next {
			log.Info("store: migrating", "records", n, "of", total)
			next += migrationProgress(total)
		}
	}
	if len(ws) > 0 {
		err = commitAll(dst, ws)
		n += len(ws)
	}
	return n, err
}

// migrationProgress is how many records go between two progress lines: a tenth, at least a
// batch.
func migrationProgress(total int) int { return max(total/10, migrationBatch) }

// commitAll commits ws and fails if the store refused any of them (a full disk).
func commitAll(dst *Pebble, ws []Write) error {
	if err := dst.Commit(ws); err != nil {
		return err
	}
	for i := range ws {
		if ws[i].Err != nil {
			return fmt.Errorf("record %q: %w", ws[i].Key, ws[i].Err)
		}
	}
	return nil
}

// setAside renames the bbolt file of a completed migration out of the way, keeping it.
func setAside(dir, old string, o Options) error {
	kept := old + ".migrated"
	if err := os.Rename(old, kept); err != nil {
		return fmt.Errorf("nameservice: setting the migrated bbolt file aside: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("nameservice: %w", err)
	}
	o.Logger.Info("store: the data is in pebble now; the old bbolt file is kept: delete it when you no longer need it", "kept", kept)
	return nil
}

// syncDir makes the renames inside dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
