package processor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The argument and result encoding (PROCESSORS.md, "Arguments and results"): a sequence of
//
//	u      uvarint: unsigned LEB128, as protobuf's varint, in its shortest form
//	i      signed varint: zigzag ((n << 1) ^ (n >> 63)), then as u
//	f64    8 bytes: IEEE 754 binary64, big-endian
//	byte   1 byte
//	bytes  u length, then that many bytes
//
// Arguments start with a sub-command byte. Nothing may follow the last field.

func appendU(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
func appendI(dst []byte, v int64) []byte  { return binary.AppendVarint(dst, v) }

func appendF64(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// uvarintLen is the length of v's uvarint.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// readUvarint decodes a shortest-form uvarint from the start of b; n <= 0 if there is none.
func readUvarint(b []byte) (v uint64, n int) {
	v, n = binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -1 // not the shortest form: a trailing zero group
	}
	return v, n
}

// reader reads the encoding from b. Its first error sticks: later reads return zero values,
// and err says what was wrong first, wrapping kind (ErrBadArgs for arguments, ErrMalformed
// for results).
type reader struct {
	b    []byte
	err  error
	kind error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", r.kind, fmt.Sprintf(format, args...))
		r.b = nil
	}
}

// left is the number of bytes not read yet.
func (r *reader) left() int { return len(r.b) }

func (r *reader) byte1(what string) byte {
	if len(r.b) < 1 {
		r.fail("%s: missing", what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u(what string) uint64 {
	v, n := readUvarint(r.b)
	if n <= 0 {
		if r.err == nil {
			r.fail("%s: missing, truncated, over 64 bits or not in its shortest form", what)
		}
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) i(what string) int64 {
	ux := r.u(what)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) f64(what string) float64 {
	if len(r.b) < 8 {
		r.fail("%s: needs 8 bytes, %d left", what, len(r.b))
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}

// bytes reads a length-prefixed byte string; it aliases the input.
func (r *reader) bytes(what string) []byte {
	n, w := readUvarint(r.b)
	if w <= 0 {
		r.fail("%s length: missing, truncated, over 64 bits or not in its shortest form", what)
		return nil
	}
	r.b = r.b[w:]
	if n > uint64(len(r.b)) {
		r.fail("%s: length %d, but %d bytes left", what, n, len(r.b))
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// count reads a count of items of at least minSize bytes each, refusing a count that the
// bytes left cannot hold, so that nothing is ever sized by what a count merely claims.
func (r *reader) count(what string, minSize int) int {
	n := r.u(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/minSize) {
		r.fail("%s: %d items cannot fit in the %d bytes left", what, n, len(r.b))
		return 0
	}
	return int(n)
}

// end fails if anything is left, and returns the reader's error.
func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d unexpected bytes after the last field", len(r.b))
	}
	return r.err
}
