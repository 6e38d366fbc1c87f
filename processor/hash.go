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

// scratch is a live value's working memory for the arguments of a call, kept between calls.
type scratch struct {
	kvs []kv
}

// kv is a field (or member) from the arguments, with its value (hash set).
type kv struct {
	key, value []byte
}

// Hash is the built-in hash processor (a map from fields to values: a player profile) on
// encoded values: HashType's TypeFunc.
var Hash = TypeFunc(HashType)

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
