package nameservice

import "errors"

// Record is a stored value.
type Record struct {
	Value    []byte
	Version  uint64 // the cache's version of the value; versions never repeat (see Store.MaxVersion)
	ExpireAt int64  // unix milliseconds; 0 means never
}

// Expired reports whether r has expired at nowMs (unix milliseconds).
func (r *Record) Expired(nowMs int64) bool { return r.ExpireAt != 0 && r.ExpireAt <= nowMs }

// Write is one change in a Commit: a put of Record, or a delete.
type Write struct {
	Key    string
	Delete bool
	Record Record
}

// Store is the persistent store. Implementations are safe for concurrent use; calls may block
// (disk, network), so stage loops never call them directly.
type Store interface {
	// Get returns the record for key. ok is false if there is none or it has expired.
	Get(key string, nowMs int64) (r Record, ok bool, err error)
	// Commit applies writes atomically and durably: when it returns nil, every write survives a
	// crash. Writes to the same key apply in order.
	Commit(writes []Write) error
	// MaxVersion returns the highest version ever committed, so that a restarted cache continues
	// numbering above it.
	MaxVersion() (uint64, error)
	// Scan calls fn for each live record whose key starts with prefix, in key order, until fn
	// returns false. For tooling; it reads a consistent snapshot.
	Scan(prefix string, nowMs int64, fn func(key string, r Record) bool) error
	// SweepExpired deletes up to limit records expired at nowMs and returns how many it deleted.
	SweepExpired(nowMs int64, limit int) (int, error)
	Close() error
}

// Errors.
var (
	ErrClosed  = errors.New("nameservice: store closed")
	ErrCorrupt = errors.New("nameservice: corrupt record")
)
