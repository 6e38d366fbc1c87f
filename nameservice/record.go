package nameservice

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// How the embedded engines (Pebble, and Bolt before it) store a record: the same bytes in both,
// so that a migration copies values as they are.
//
//	record:       version (8, BE) | expireAt (8, BE) | value
//	expiry index: expireAt (8, BE) | key -> (empty), for the sweeper
const recordHeader = 16

// Limits of the embedded store: the same for both engines, so that whatever one accepted the
// other does (bbolt refuses keys over 32 KiB, and the expiry index prefixes a key with 8 bytes).
const (
	MaxKey   = 32768 - 8
	MaxValue = 1<<31 - 2 - recordHeader
)

func encodeRecord(r *Record) []byte {
	return appendRecord(make([]byte, 0, recordHeader+len(r.Value)), r)
}

func appendRecord(b []byte, r *Record) []byte {
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ExpireAt))
	return append(b, r.Value...)
}

// decodeRecord copies v (the engines' memory is valid only until their read ends).
func decodeRecord(v []byte) (Record, error) {
	if len(v) < recordHeader {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(v))
	}
	return Record{
		Version:  binary.BigEndian.Uint64(v),
		ExpireAt: recordExpireAt(v),
		Value:    bytes.Clone(v[recordHeader:]),
	}, nil
}

// recordExpireAt reads the deadline of an encoded record; 0 if v is too short to hold one.
func recordExpireAt(v []byte) int64 {
	if len(v) < recordHeader {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[8:]))
}

func expiryKey(expireAt int64, key string) []byte {
	return appendExpiryKey(make([]byte, 0, 8+len(key)), expireAt, key)
}

func appendExpiryKey(b []byte, expireAt int64, key string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(expireAt))
	return append(b, key...)
}

// checkWrite returns why the store refuses w by itself, or nil.
func checkWrite(w *Write) error {
	switch {
	case len(w.Key) == 0:
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case len(w.Key) > MaxKey:
		return fmt.Errorf("%w: key of %d bytes", ErrInvalid, len(w.Key))
	case len(w.Record.Value) > MaxValue:
		return fmt.Errorf("%w: value of %d bytes", ErrInvalid, len(w.Record.Value))
	}
	return nil
}
