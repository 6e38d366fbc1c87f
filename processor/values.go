package processor

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Full decoders and encoders of the built-ins' values, for clients that read a value with a
// plain get (and for tests). A decoder checks everything PROCESSORS.md requires, so it accepts
// exactly the canonical encodings, which the processors and the encoders write, and the empty
// value (no entries); re-encoding what it returns gives back the same bytes. It never panics,
// whatever its input, and never allocates more than its input can hold. Returned byte slices
// alias the input.

// Field is a hash field and its value.
type Field struct {
	Name  string
	Value []byte
}

// Member is a sorted-set member and its score.
type Member struct {
	Name  string
	Score float64
}

// checkTable checks that t's offsets are canonical: the first entry starts the area, and each
// entry ends where the next starts (span checks that for every i).
func checkTable(t *table, what string) error {
	switch {
	case t.n > 0 && u32(t.offs) != 0:
		return wrongType("%s value: entry 0 does not start the entry area", what)
	case t.n == 0 && len(t.area) > 0:
		return wrongType("%s value: %d bytes after an empty table", what, len(t.area))
	}
	for i := 0; i < t.n; i++ {
		if _, _, ok := t.span(i); !ok {
			return errCorrupt(i)
		}
	}
	return nil
}

// DecodeHash decodes a hash value into its fields, in ascending byte order of their names.
func DecodeHash(b []byte) ([]Field, error) {
	t, err := parseCanonical(b, FormatHash)
	if err != nil {
		return nil, err
	}
	fields := make([]Field, 0, t.n)
	for i := 0; i < t.n; i++ {
		f, v, _ := t.hashEntry(i) // checked by checkFields
		fields = append(fields, Field{Name: string(f), Value: v})
	}
	return fields, nil
}

// checkFields checks that every entry holds a field name and that the names are in strictly
// ascending order (so none is there twice).
func checkFields(t *table) error {
	var prev []byte
	for i := 0; i < t.n; i++ {
		f, _, err := t.hashEntry(i)
		if err != nil {
			return err
		}
		if i > 0 && bytes.Compare(prev, f) >= 0 {
			return wrongType("hash value: field %d is not after field %d", i, i-1)
		}
		prev = f
	}
	return nil
}

// EncodeHash appends to dst the hash value holding fields, in any order; two fields of one
// name are an error.
func EncodeHash(dst []byte, fields []Field) ([]byte, error) {
	sorted := slices.SortedFunc(slices.Values(fields), func(a, b Field) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name == sorted[i-1].Name {
			return dst, fmt.Errorf("processor: hash field %q given twice", sorted[i].Name)
		}
	}
	return encodeTable(dst, FormatHash, len(sorted), nil, func(area []byte, i int) []byte {
		return append(appendString(area, sorted[i].Name), sorted[i].Value...)
	})
}

// DecodeList decodes a list value into its elements, head first.
func DecodeList(b []byte) ([][]byte, error) {
	t, err := parseCanonical(b, FormatList)
	if err != nil {
		return nil, err
	}
	elems := make([][]byte, 0, t.n)
	for i := 0; i < t.n; i++ {
		e, _ := t.entry(i) // checked by checkTable
		elems = append(elems, e)
	}
	return elems, nil
}

// EncodeList appends to dst the list value holding elems, head first.
func EncodeList(dst []byte, elems [][]byte) ([]byte, error) {
	return encodeTable(dst, FormatList, len(elems), nil, func(area []byte, i int) []byte {
		return append(area, elems[i]...)
	})
}

// DecodeZSet decodes a sorted-set value into its members, in ascending (score, member) order.
func DecodeZSet(b []byte) ([]Member, error) {
	t, err := parseCanonical(b, FormatZSet)
	if err != nil {
		return nil, err
	}
	members := make([]Member, 0, t.n)
	for p := 0; p < t.n; p++ {
		_, m, s, _ := t.atPos(p) // checked by checkMembers and checkScoreOrder
		members = append(members, Member{Name: string(m), Score: s})
	}
	return members, nil
}

// checkMembers checks that the members are in strictly ascending order with canonical scores.
func checkMembers(t *table) error {
	var prev []byte
	for i := 0; i < t.n; i++ {
		m, s, err := t.zEntry(i)
		if err != nil {
			return err
		}
		if err := checkScore(i, s); err != nil {
			return err
		}
		if i > 0 && bytes.Compare(prev, m) >= 0 {
			return wrongType("zset value: member %d is not after member %d", i, i-1)
		}
		prev = m
	}
	return nil
}

// checkScoreOrder checks that the score order names members (checkMembers has checked them)
// in strictly ascending order of (score, member), so that it names each member exactly once.
func checkScoreOrder(t *table) error {
	var prevM []byte
	var prevS float64
	for p := 0; p < t.n; p++ {
		_, m, s, err := t.atPos(p)
		if err != nil {
			return err
		}
		if p > 0 && cmpScored(prevS, prevM, s, m) >= 0 {
			return wrongType("zset value: score position %d is not after %d", p, p-1)
		}
		prevM, prevS = m, s
	}
	return nil
}

// checkScore checks that member i's score is one the processors store: finite, and not -0
// (they store +0).
func checkScore(i int, s float64) error {
	if !finite(s) || (s == 0 && math.Signbit(s)) {
		return wrongType("zset value: member %d has the score %v", i, s)
	}
	return nil
}

// EncodeZSet appends to dst the sorted-set value holding members, in any order; two members
// of one name, or a score that is NaN or infinite, are an error.
func EncodeZSet(dst []byte, members []Member) ([]byte, error) {
	sorted := slices.SortedFunc(slices.Values(members), func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	for i := range sorted {
		if !finite(sorted[i].Score) {
			return dst, fmt.Errorf("processor: zset member %q has the score %v", sorted[i].Name, sorted[i].Score)
		}
		if sorted[i].Score == 0 {
			sorted[i].Score = 0 // -0 is stored as +0
		}
		if i > 0 && sorted[i].Name == sorted[i-1].Name {
			return dst, fmt.Errorf("processor: zset member %q given twice", sorted[i].Name)
		}
	}
	order := make([]int, len(sorted))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmpScored(sorted[a].Score, []byte(sorted[a].Name), sorted[b].Score, []byte(sorted[b].Name))
	})
	mid := make([]byte, 4*len(sorted))
	for p, o := range order {
		putU32(mid, p, o)
	}
	return encodeTable(dst, FormatZSet, len(sorted), mid, func(area []byte, i int) []byte {
		return append(binary.BigEndian.AppendUint64(area, math.Float64bits(sorted[i].Score)), sorted[i].Name...)
	})
}

// encodeTable appends a value in the table layout with n entries written by entry, and the
// mid table mid.
func encodeTable(dst []byte, format byte, n int, mid []byte, entry func(area []byte, i int) []byte) ([]byte, error) {
	if uint64(n) > math.MaxUint32 {
		return dst, fmt.Errorf("processor: %d entries, over the encoding's 2^32", n)
	}
	var area []byte
	offs := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		if uint64(len(area)) > math.MaxUint32 {
			return dst, fmt.Errorf("processor: value over the encoding's 4 GiB")
		}
		putU32(offs, i, len(area))
		area = entry(area, i)
	}
	dst = append(dst, format)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, offs...)
	dst = append(dst, mid...)
	return append(dst, area...), nil
}

// EncodingOf names the built-in processor whose encoding b is: "hash", "list" or "zset" if its
// format byte says so and all of it is canonical (the checks a processor makes when it decodes
// it, parseCanonical: O(entries), allocating nothing), else "" (a plain value, one a custom
// processor wrote, or one the built-in would refuse with ErrWrongType).
func EncodingOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if _, err := parseCanonical(b, b[0]); err != nil {
		return ""
	}
	return formatNames[b[0]]
}

// formatNames names the built-ins' format bytes.
var formatNames = map[byte]string{FormatHash: "hash", FormatList: "list", FormatZSet: "zset"}

// parseCanonical reads b, a value of the built-in whose format byte is format, and checks all
// of it: the table (checkTable) and what the built-in's invariants rely on (checkFields,
// checkMembers, checkScoreOrder). It allocates nothing.
func parseCanonical(b []byte, format byte) (t table, err error) {
	switch format {
	case FormatHash:
		if t, err = parseChecked(b, format, 0, "hash"); err == nil {
			err = checkFields(&t)
		}
	case FormatList:
		t, err = parseChecked(b, format, 0, "list")
	case FormatZSet:
		if t, err = parseChecked(b, format, 4, "zset"); err == nil {
			err = checkMembers(&t)
		}
		if err == nil {
			err = checkScoreOrder(&t)
		}
	default:
		err = wrongType("not a built-in value (format byte 0x%02x)", format)
	}
	return t, err
}
