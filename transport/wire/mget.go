package wire

import (
	"encoding/binary"
	"fmt"
)

// MaxMGetKeys is the most keys one mget may name.
const MaxMGetKeys = 1000

// AppendKeys encodes the keys of an mget request: each key as a big-endian uint16 length and
// its bytes.
func AppendKeys(dst []byte, keys []string) []byte {
	for _, k := range keys {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
	}
	return dst
}

// SplitKeys decodes the keys of an mget request; the keys alias b.
func SplitKeys(b []byte, maxKey int) ([][]byte, error) {
	var keys [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated key length", ErrBadFrame)
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if n > len(b) {
			return nil, fmt.Errorf("%w: key length %d beyond the value", ErrBadFrame, n)
		}
		if n == 0 { // a bad request, as an empty key is for every other op (PROTOCOL.md)
			return nil, fmt.Errorf("%w: an empty key", ErrBadFrame)
		}
		if n > maxKey {
			return nil, fmt.Errorf("%w: key of %d bytes", ErrFrameTooLarge, n)
		}
		if len(keys) == MaxMGetKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrFrameTooLarge, MaxMGetKeys)
		}
		keys = append(keys, b[:n])
		b = b[n:]
	}
	return keys, nil
}

// AppendMGetResult encodes one key's result in an mget reply: found (1 byte), version
// (big-endian uint64), value length (big-endian uint32) and the value.
func AppendMGetResult(dst []byte, found bool, version uint64, value []byte) []byte {
	f := byte(0)
	if found {
		f = 1
	}
	dst = append(dst, f)
	dst = binary.BigEndian.AppendUint64(dst, version)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// MGetResult is one key's result in an mget reply.
type MGetResult struct {
	Found   bool
	Version uint64
	Value   []byte // aliases the reply
}

// SplitMGetResults decodes an mget reply holding n results.
func SplitMGetResults(b []byte, n int) ([]MGetResult, error) {
	out := make([]MGetResult, 0, n)
	for range n {
		if len(b) < 13 {
			return nil, fmt.Errorf("%w: truncated mget result", ErrBadFrame)
		}
		r := MGetResult{Found: b[0] == 1, Version: binary.BigEndian.Uint64(b[1:])}
		vlen := int(binary.BigEndian.Uint32(b[9:]))
		b = b[13:]
		if vlen > len(b) {
			return nil, fmt.Errorf("%w: mget value of %d bytes beyond the reply", ErrBadFrame, vlen)
		}
		r.Value, b = b[:vlen], b[vlen:]
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last mget result", ErrBadFrame, len(b))
	}
	return out, nil
}
