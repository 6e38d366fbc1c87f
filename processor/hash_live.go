package processor

import (
	"bytes"
	"encoding/binary"

	"github.com/tidwall/btree"
)

// The live hash: its fields in a B-tree ordered by name (github.com/tidwall/btree), so that a
// field is O(log n) away and getall and the encoding walk them in order.

// HashType is the hash Type (the built-in hash processor).
var HashType Type = hashType{}

type hashType struct{}

// hField is one field; name and value are its own copies (or point into the decoded value's
// buffer).
type hField struct {
	name, value []byte
}

func lessField(a, b *hField) bool { return bytes.Compare(a.name, b.name) < 0 }

// hFieldMem is what a field costs beyond its bytes: the struct, the allocator's rounding and its
// B-tree slot.
const hFieldMem = 72

type hashValue struct {
	fields *btree.BTreeG[*hField]
	size   int // the encoding's length
	bytes  int // of names and values
	probe  hField
	undo   []hUndo
	sc     scratch
}

// hUndo is one change to take back: a field added, set from old, or removed.
type hUndo struct {
	f    *hField
	old  []byte
	kind byte // hAdded, hChanged, hRemoved
}

const (
	hAdded = iota
	hChanged
	hRemoved
)

func (hashType) Empty() Value { return newHash() }

func newHash() *hashValue {
	return &hashValue{fields: btree.NewBTreeGOptions(lessField, btree.Options{NoLocks: true}), size: headerLen}
}

// Decode decodes and checks a hash value, as DecodeHash does.
func (hashType) Decode(b []byte) (Value, error) {
	t, err := parseChecked(b, FormatHash, 0, "hash")
	if err != nil {
		return nil, err
	}
	h := newHash()
	buf := bytes.Clone(t.area)
	fs := make([]hField, t.n)
	view := t
	view.area = buf
	for i := range fs {
		name, value, err := view.hashEntry(i)
		if err != nil {
			return nil, err
		}
		if i > 0 && bytes.Compare(fs[i-1].name, name) >= 0 {
			return nil, wrongType("hash value: field %d is not after field %d", i, i-1)
		}
		fs[i] = hField{name: name, value: value}
		h.fields.Load(&fs[i])
		h.bytes += len(name) + len(value)
	}
	h.size = max(len(b), headerLen)
	return h, nil
}

// hEntrySize is what a field adds to the encoding: its offset and its entry.
func hEntrySize(name, value []byte) int {
	return 4 + uvarintLen(uint64(len(name))) + len(name) + len(value)
}

func (h *hashValue) Size() int { return h.size }
func (h *hashValue) Mem() int  { return h.bytes + h.fields.Len()*hFieldMem + 256 }

// AppendEncoded writes the value in the hash encoding (PROCESSORS.md, "hash").
func (h *hashValue) AppendEncoded(dst []byte) []byte {
	n := h.fields.Len()
	dst = append(dst, FormatHash)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	offs := len(dst)
	dst = append(dst, make([]byte, 4*n)...)
	area, i := 0, 0
	h.fields.Scan(func(f *hField) bool {
		binary.BigEndian.PutUint32(dst[offs+4*i:], uint32(area))
		start := len(dst)
		dst = append(appendBytes(dst, f.name), f.value...)
		area += len(dst) - start
		i++
		return true
	})
	return dst
}

func (h *hashValue) find(name []byte) (*hField, bool) {
	h.probe.name = name
	f, ok := h.fields.Get(&h.probe)
	h.probe.name = nil
	return f, ok
}

func (h *hashValue) add(f *hField) {
	h.fields.Set(f)
	h.size += hEntrySize(f.name, f.value)
	h.bytes += len(f.name) + len(f.value)
}

func (h *hashValue) drop(f *hField) {
	h.fields.Delete(f)
	h.size -= hEntrySize(f.name, f.value)
	h.bytes -= len(f.name) + len(f.value)
}

// setValue gives f a new value.
func (h *hashValue) setValue(f *hField, value []byte) {
	h.size += len(value) - len(f.value)
	h.bytes += len(value) - len(f.value)
	f.value = value
}

// Undo takes back the last Exec's changes, newest first.
func (h *hashValue) Undo() {
	for i := len(h.undo) - 1; i >= 0; i-- {
		u := h.undo[i]
		switch u.kind {
		case hAdded:
			h.drop(u.f)
		case hChanged:
			h.setValue(u.f, u.old)
		case hRemoved:
			h.add(u.f)
		}
	}
	clear(h.undo)
	h.undo = h.undo[:0]
}

// Exec runs one call of the hash processor (PROCESSORS.md, "hash").
func (h *hashValue) Exec(in Input, out *Output) error {
	clear(h.undo)
	h.undo = h.undo[:0]
	r, cmd, err := beginCall(in, out, "hash sub-command")
	if err != nil {
		return err
	}
	switch cmd {
	case HashCmdSet:
		return h.set(&r, out)
	case HashCmdGet:
		return h.get(&r, out)
	case HashCmdDel:
		return h.del(&r, out)
	case HashCmdGetAll:
		if err := r.end(); err != nil {
			return err
		}
		return h.all(out)
	case HashCmdLen:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(h.fields.Len()))
		return nil
	}
	return badArgs("hash has no sub-command %q", cmd)
}

func (h *hashValue) set(r *reader, out *Output) error {
	kvs, err := readKeys(r, &h.sc, true, "field")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs) * searchCost(h.fields.Len())); err != nil {
		return err
	}
	added, changed, size := 0, false, h.size
	for i := range kvs {
		f, found := h.find(kvs[i].key)
		switch {
		case !found:
			added++
			size += hEntrySize(kvs[i].key, kvs[i].value)
		case !bytes.Equal(f.value, kvs[i].value):
			changed = true
			size += len(kvs[i].value) - len(f.value)
		}
	}
	out.Result = appendU(out.Result, uint64(added))
	if added == 0 && !changed {
		return nil // every field already had its value: no new version
	}
	if out.maxValue > 0 && size > out.maxValue {
		return tooLarge("new value of %d bytes over the limit of %d", size, out.maxValue)
	}
	for i := range kvs {
		f, found := h.find(kvs[i].key)
		switch {
		case !found:
			f = &hField{name: bytes.Clone(kvs[i].key), value: bytes.Clone(kvs[i].value)}
			h.add(f)
			h.undo = append(h.undo, hUndo{f: f, kind: hAdded})
		case !bytes.Equal(f.value, kvs[i].value):
			h.undo = append(h.undo, hUndo{f: f, old: f.value, kind: hChanged})
			h.setValue(f, bytes.Clone(kvs[i].value))
		}
	}
	clear(h.sc.kvs)
	out.Action = Set
	return nil
}

func (h *hashValue) get(r *reader, out *Output) error {
	m := r.count("field", 1)
	if err := out.Charge(m * searchCost(h.fields.Len())); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(m))
	for i := 0; i < m && r.err == nil; i++ {
		name := r.bytes("field")
		if r.err != nil {
			break
		}
		f, found := h.find(name)
		if !found {
			out.Result = append(out.Result, 0)
			continue
		}
		out.Result = appendBytes(append(out.Result, 1), f.value)
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return r.end()
}

func (h *hashValue) del(r *reader, out *Output) error {
	kvs, err := readKeys(r, &h.sc, false, "field")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs) * searchCost(h.fields.Len())); err != nil {
		return err
	}
	removed := 0
	for i := range kvs {
		if _, found := h.find(kvs[i].key); found {
			removed++
		}
	}
	out.Result = appendU(out.Result, uint64(removed))
	switch {
	case removed == 0:
	case removed == h.fields.Len():
		out.Action = Delete // an empty hash is no hash, as in Redis
	default:
		for i := range kvs {
			if f, found := h.find(kvs[i].key); found {
				h.drop(f)
				h.undo = append(h.undo, hUndo{f: f, kind: hRemoved})
			}
		}
		out.Action = Set
	}
	clear(h.sc.kvs)
	return nil
}

func (h *hashValue) all(out *Output) error {
	n := h.fields.Len()
	if err := out.Charge(n); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(n))
	var err error
	h.fields.Scan(func(f *hField) bool {
		out.Result = appendBytes(appendBytes(out.Result, f.name), f.value)
		if out.resultFull() {
			err = tooLarge("result over the limit of %d bytes", out.maxResult)
			return false
		}
		return true
	})
	return err
}
