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
	// Err is set by Commit when this write was not applied although others were: the store
	// refused it alone (an empty key, a key or value over the store's own limits: the error
	// wraps ErrInvalid), or a later part of a commit the store splits failed.
	Err error
}

// Store is the persistent store. Implementations are safe for concurrent use; calls may block
// (disk, network), so stage loops never call them directly.
type Store interface {
	// Get returns the record for key. ok is false if there is none or it has expired.
	Get(key string, nowMs int64) (r Record, ok bool, err error)
	// Commit applies writes durably: when it returns nil, every write without an Err survives a
	// crash; a write the store refuses by itself gets an Err and is skipped, never failing the
	// others. An error means nothing was applied; it wraps ErrUnavailable when the store cannot
	// be reached at all (retrying the writes one by one would not help). Writes to the same key
	// apply in order.
	Commit(writes []Write) error
	// MaxVersion returns the highest version ever committed, so that a restarted cache continues
	// numbering above it.
	MaxVersion() (uint64, error)
	// Scan calls fn for each live record whose key starts with prefix and is not below from
	// ("" or a key below the prefix: from the prefix's first key), in key order, until fn
	// returns false. It reads a consistent snapshot (the scan op's steps: stages.ScanArgs).
	Scan(prefix, from string, nowMs int64, fn func(key string, r Record) bool) error
	// SweepExpired deletes up to limit records expired at nowMs and returns how many it deleted.
	SweepExpired(nowMs int64, limit int) (int, error)
	Close() error
}

// Errors.
var (
	ErrClosed      = errors.New("nameservice: store closed")
	ErrCorrupt     = errors.New("nameservice: corrupt record")
	ErrInvalid     = errors.New("nameservice: write refused")     // this write only: see Write.Err
	ErrUnavailable = errors.New("nameservice: store unreachable") // the whole store, for now
)
