package processor

import (
	"encoding/binary"
	"slices"
)

// The layout shared by the three built-in values (PROCESSORS.md, "The table layout"):
//
//	format  1 byte        which encoding, and its version
//	n       uint32 BE     the number of entries
//	off     n × uint32 BE where entry i starts, counted from the start of the entry area
//	mid     n × midSize   a second table of the encoding's own (zset: the score order)
//	area    the entries, back to back; entry i ends where entry i+1 starts (the last one at
//	        the end of the value), so no entry stores its own length
//
// Random access to any entry costs two reads of off, which is what makes binary search over
// the entries, and ranges, O(log n) without decoding the value.

const headerLen = 5 // format byte and n

// table is a view of a value in the table layout. Only its header has been checked: every
// access checks the offsets it uses, so a corrupt value gives an error, never a panic.
type table struct {
	n    int
	offs []byte // 4n bytes
	mid  []byte // midSize*n bytes
	area []byte
}

func u32(b []byte) int { return int(binary.BigEndian.Uint32(b)) }

// parseTable reads the header of b, a value of the given format; an empty b is an empty
// table. It costs O(1).
func parseTable(b []byte, format byte, midSize int, what string) (table, error) {
	if len(b) == 0 {
		return table{}, nil
	}
	if b[0] != format {
		return table{}, wrongType("not a %s value (format byte 0x%02x, want 0x%02x)", what, b[0], format)
	}
	if len(b) < headerLen {
		return table{}, wrongType("%s value of %d bytes is shorter than its header", what, len(b))
	}
	n := u32(b[1:])
	per := 4 + midSize
	if n > (len(b)-headerLen)/per {
		return table{}, wrongType("%s value claims %d entries, more than its %d bytes hold", what, n, len(b))
	}
	end := headerLen + 4*n
	return table{n: n, offs: b[headerLen:end], mid: b[end : end+midSize*n], area: b[end+midSize*n:]}, nil
}

// span returns where entry i lies in the area.
func (t *table) span(i int) (start, end int, ok bool) {
	start = u32(t.offs[4*i:])
	end = len(t.area)
	if i+1 < t.n {
		end = u32(t.offs[4*i+4:])
	}
	return start, end, start <= end && end <= len(t.area)
}

// entry returns the bytes of entry i (aliasing the value).
func (t *table) entry(i int) ([]byte, error) {
	s, e, ok := t.span(i)
	if !ok {
		return nil, errCorrupt(i)
	}
	return t.area[s:e:e], nil
}

func errCorrupt(i int) error { return wrongType("corrupt value: entry %d is out of bounds", i) }

// seg is one piece of a table being rebuilt: the old entries [from, to), or one new entry.
type seg struct {
	from, to int
	fresh    bool   // a new entry: data
	data     []byte // the new entry's bytes
}

func oldSeg(from, to int) seg { return seg{from: from, to: to} }
func newSeg(data []byte) seg  { return seg{fresh: true, data: data} }

// appendOld adds old entries [from, to) to segs, if there are any.
func appendOld(segs []seg, from, to int) []seg {
	if from < to {
		segs = append(segs, oldSeg(from, to))
	}
	return segs
}

// rebuild writes into dst[:0] a value of the given format holding segs in order, with midSize
// bytes per entry reserved (zero) between the offsets and the area, and returns it with the
// reserved table and the number of entries. It copies each run of old entries with one copy
// and rewrites its offsets; it checks every old offset it rewrites. Over maxSize bytes (when
// maxSize > 0) it fails with ErrTooLarge before writing anything.
func rebuild(dst []byte, format byte, old *table, segs []seg, midSize, maxSize int) (out, mid []byte, n int, err error) {
	areaLen := 0
	for _, s := range segs {
		if s.fresh {
			n++
			areaLen += len(s.data)
			continue
		}
		a, _, ok1 := old.span(s.from)
		_, b, ok2 := old.span(s.to - 1)
		if !ok1 || !ok2 || a > b {
			return dst, nil, 0, errCorrupt(s.from)
		}
		n += s.to - s.from
		areaLen += b - a
	}
	size := headerLen + (4+midSize)*n + areaLen
	if maxSize > 0 && size > maxSize {
		return dst, nil, 0, tooLarge("new value of %d bytes over the limit of %d", size, maxSize)
	}
	if uint64(n) > 1<<32-1 || uint64(areaLen) > 1<<32-1 {
		return dst, nil, 0, tooLarge("new value of %d entries and %d bytes over the encoding's 2^32", n, areaLen)
	}
	out = slices.Grow(dst[:0], size)[:size]
	out[0] = format
	binary.BigEndian.PutUint32(out[1:], uint32(n))
	offs := out[headerLen : headerLen+4*n]
	mid = out[headerLen+4*n : headerLen+(4+midSize)*n]
	clear(mid)
	area := out[headerLen+(4+midSize)*n:]
	if err := fill(offs, area, old, segs); err != nil {
		return dst, nil, 0, err
	}
	return out, mid, n, nil
}

// fill writes the offsets and the area of a rebuilt table.
func fill(offs, area []byte, old *table, segs []seg) error {
	pos, k := 0, 0 // where the next entry starts in area; the next entry's index
	for _, s := range segs {
		if s.fresh {
			binary.BigEndian.PutUint32(offs[4*k:], uint32(pos))
			pos += copy(area[pos:], s.data)
			k++
			continue
		}
		base, _, _ := old.span(s.from)
		_, end, _ := old.span(s.to - 1)
		src := old.offs[4*s.from : 4*s.to]
		dst := offs[4*k : 4*k+len(src)]
		prev, delta := base, pos-base
		for i := 0; i+4 <= len(src) && i+4 <= len(dst); i += 4 {
			o := int(binary.BigEndian.Uint32(src[i:]))
			if o < prev || o > end {
				return errCorrupt(s.from + i/4)
			}
			prev = o
			binary.BigEndian.PutUint32(dst[i:], uint32(o+delta))
		}
		k += s.to - s.from
		pos += copy(area[pos:], old.area[base:end])
	}
	return nil
}
