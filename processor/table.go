package processor

import "encoding/binary"

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
