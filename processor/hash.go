package processor

import (
	"bytes"
	"slices"
)

// FormatHash is the format byte of a hash value, version 1.
const FormatHash = 0x01

// The hash's sub-commands (PROCESSORS.md, "hash").
const (
	HashCmdSet    = 's' // count u, count × (field bytes, value bytes) → u: fields added
	HashCmdGet    = 'g' // count u, count × field bytes → u count, count × (found byte, [value bytes])
	HashCmdDel    = 'd' // count u, count × field bytes → u: fields removed
	HashCmdGetAll = 'a' // nothing → u count, count × (field bytes, value bytes), fields ascending
	HashCmdLen    = 'n' // nothing → u: number of fields
)

// A hash value is the table layout with no mid table; entry i is
//
//	field length u, field, value (the rest of the entry)
//
// with the fields in strictly ascending byte order.

// scratch is the built-ins' working memory, kept in the Output between calls.
type scratch struct {
	segs []seg
	kvs  []kv
	buf  []byte
	idx  []int
}

// kv is a field (or member) from the arguments and, once built, its new entry in scratch.buf.
type kv struct {
	key, value []byte
	start, end int
	score      float64
}

// Hash is the built-in hash processor: a map from fields to values (a player profile).
func Hash(in Input, out *Output) error {
	r := reader{b: in.Args, kind: ErrBadArgs}
	cmd := r.byte1("hash sub-command")
	if r.err != nil {
		return r.err
	}
	t, err := parseTable(in.Value, FormatHash, 0, "hash")
	if err != nil {
		return err
	}
	if err := out.Charge(1); err != nil {
		return err
	}
	switch cmd {
	case HashCmdSet:
		return hashSet(&t, &r, out)
	case HashCmdGet:
		return hashGet(&t, &r, out)
	case HashCmdDel:
		return hashDel(&t, &r, out)
	case HashCmdGetAll:
		if err := r.end(); err != nil {
			return err
		}
		return hashAll(&t, out)
	case HashCmdLen:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(t.n))
		return nil
	}
	return badArgs("hash has no sub-command %q", cmd)
}

// hashEntry splits entry i into its field and its value.
func (t *table) hashEntry(i int) (field, value []byte, err error) {
	e, err := t.entry(i)
	if err != nil {
		return nil, nil, err
	}
	n, w := readUvarint(e)
	if w <= 0 || n > uint64(len(e)-w) {
		return nil, nil, wrongType("corrupt hash: entry %d has a bad field length", i)
	}
	return e[w : w+int(n)], e[w+int(n):], nil
}

// searchField returns the index of field in t, or where it would be inserted.
func (t *table) searchField(field []byte) (int, bool, error) {
	lo, hi := 0, t.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		f, _, err := t.hashEntry(m)
		if err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(f, field); {
		case c == 0:
			return m, true, nil
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return lo, false, nil
}

// searchCost is the steps of one binary search over n entries.
func searchCost(n int) int {
	c := 1
	for ; n > 1; n >>= 1 {
		c++
	}
	return c
}

// readKeys reads count × (key bytes[, value bytes]) into s.kvs, sorted by key with the last
// of equal keys kept.
func readKeys(r *reader, s *scratch, withValues bool, what string) ([]kv, error) {
	minSize := 1
	if withValues {
		minSize = 2
	}
	m := r.count(what, minSize)
	kvs := s.kvs[:0]
	for i := 0; i < m && r.err == nil; i++ {
		e := kv{key: r.bytes(what)}
		if withValues {
			e.value = r.bytes("value")
		}
		kvs = append(kvs, e)
	}
	s.kvs = kvs
	if err := r.end(); err != nil {
		return nil, err
	}
	if m == 0 {
		return nil, badArgs("no %s given", what)
	}
	return dedupe(kvs), nil
}

// dedupe sorts kvs by key, stably, and keeps the last of each run of equal keys.
func dedupe(kvs []kv) []kv {
	slices.SortStableFunc(kvs, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
	w := 0
	for i := range kvs {
		if i+1 < len(kvs) && bytes.Equal(kvs[i].key, kvs[i+1].key) {
			continue
		}
		kvs[w] = kvs[i]
		w++
	}
	return kvs[:w]
}

func hashSet(t *table, r *reader, out *Output) error {
	s := &out.scratch
	kvs, err := readKeys(r, s, true, "field")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs)*searchCost(t.n) + t.n); err != nil {
		return err
	}
	added, changed, err := hashSetPlan(t, kvs, s)
	if err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(added))
	if added == 0 && !changed {
		return nil // every field already had its value: no new version
	}
	k := 0
	for i := range s.segs {
		if s.segs[i].fresh {
			s.segs[i].data = s.buf[kvs[k].start:kvs[k].end]
			k++
		}
	}
	return setRebuilt(out, FormatHash, t, s.segs)
}

// hashSetPlan lays out in s.segs the hash t with the fields kvs (sorted, distinct) set, and
// their new entries in s.buf (kvs[i].start to end; the segments' data is set once s.buf has
// stopped growing). It says how many fields are new, and whether an existing one changes.
func hashSetPlan(t *table, kvs []kv, s *scratch) (added int, changed bool, err error) {
	segs, prev := s.segs[:0], 0
	s.buf = s.buf[:0]
	for i := range kvs {
		at, found, err := t.searchField(kvs[i].key)
		if err != nil {
			return 0, false, err
		}
		segs = appendOld(segs, prev, at)
		segs = append(segs, seg{fresh: true})
		prev = at
		if found {
			_, v, err := t.hashEntry(at)
			if err != nil {
				return 0, false, err
			}
			changed = changed || !bytes.Equal(v, kvs[i].value)
			prev = at + 1
		} else {
			added++
		}
		kvs[i].start = len(s.buf)
		s.buf = append(appendBytes(s.buf, kvs[i].key), kvs[i].value...)
		kvs[i].end = len(s.buf)
	}
	s.segs = appendOld(segs, prev, t.n)
	return added, changed, nil
}

// setRebuilt rebuilds t from segs into out.Value and sets it.
func setRebuilt(out *Output, format byte, t *table, segs []seg) error {
	v, _, _, err := rebuild(out.Value, format, t, segs, 0, out.maxValue)
	if err != nil {
		return err
	}
	out.Value, out.Action = v, Set
	return nil
}

func hashGet(t *table, r *reader, out *Output) error {
	m := r.count("field", 1)
	if err := out.Charge(m * searchCost(t.n)); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(m))
	for i := 0; i < m && r.err == nil; i++ {
		f := r.bytes("field")
		if r.err != nil {
			break
		}
		at, found, err := t.searchField(f)
		if err != nil {
			return err
		}
		if !found {
			out.Result = append(out.Result, 0)
			continue
		}
		_, v, err := t.hashEntry(at)
		if err != nil {
			return err
		}
		out.Result = appendBytes(append(out.Result, 1), v)
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return r.end()
}

func hashDel(t *table, r *reader, out *Output) error {
	s := &out.scratch
	kvs, err := readKeys(r, s, false, "field")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs)*searchCost(t.n) + t.n); err != nil {
		return err
	}
	segs, prev := s.segs[:0], 0
	for i := range kvs {
		at, found, err := t.searchField(kvs[i].key)
		if err != nil {
			return err
		}
		if found {
			segs = appendOld(segs, prev, at)
			prev = at + 1
		}
	}
	segs = appendOld(segs, prev, t.n)
	s.segs = segs
	removed := t.n - segCount(segs)
	out.Result = appendU(out.Result, uint64(removed))
	switch {
	case removed == 0:
		return nil
	case removed == t.n:
		out.Action = Delete // an empty hash is no hash, as in Redis
		return nil
	}
	return setRebuilt(out, FormatHash, t, segs)
}

// segCount is the number of entries segs hold.
func segCount(segs []seg) int {
	n := 0
	for _, s := range segs {
		if s.fresh {
			n++
		} else {
			n += s.to - s.from
		}
	}
	return n
}

func hashAll(t *table, out *Output) error {
	if err := out.Charge(t.n); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(t.n))
	for i := 0; i < t.n; i++ {
		f, v, err := t.hashEntry(i)
		if err != nil {
			return err
		}
		out.Result = appendBytes(appendBytes(out.Result, f), v)
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return nil
}
