package processor

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"

	"github.com/tidwall/btree"
)

// The live sorted set: every member once, in two B-trees (github.com/tidwall/btree, whose
// nodes count their items, so the i-th item is O(log n) away): one ordered by member, to find a
// member and to encode the value (its entries are in member order), one ordered by (score,
// member), for ranks, tops and ranges. An update is O(log n) in each; a rank, a search by the
// score order's index, O(log² n). The B-trees were chosen over a hand-written skiplist: a
// well-kept library, the same asymptotics, and fewer pointers per member.

// ZSetType is the sorted-set Type (the built-in zset processor).
var ZSetType Type = zsetType{}

type zsetType struct{}

// zMember is one member. name is its own copy (or points into the decoded value's buffer).
type zMember struct {
	name  []byte
	score float64
	ord   int // its ordinal in member order, set while encoding
}

func lessMember(a, b *zMember) bool { return bytes.Compare(a.name, b.name) < 0 }
func lessScored(a, b *zMember) bool { return cmpScored(a.score, a.name, b.score, b.name) < 0 }

// zMemberMem is what a member costs beyond its name: the struct, the allocator's rounding and
// its two B-tree slots.
const zMemberMem = 72

type zsetValue struct {
	byMember *btree.BTreeG[*zMember]
	byScore  *btree.BTreeG[*zMember]
	size     int     // the encoding's length
	names    int     // bytes of member names
	probe    zMember // for searches, so that a search allocates nothing
	undo     []zUndo // the last Exec's changes, for Undo
	sc       scratch // the arguments of a rem
	removed  []*zMember
}

// zUndo is one change to take back: a member added (old is unused), updated from old, or removed.
type zUndo struct {
	m    *zMember
	old  float64
	kind byte // ZAdded, ZUpdated, or zRemoved
}

const zRemoved = 9

func (zsetType) Empty() Value { return newZSet() }

func newZSet() *zsetValue {
	opts := btree.Options{NoLocks: true}
	return &zsetValue{byMember: btree.NewBTreeGOptions(lessMember, opts), byScore: btree.NewBTreeGOptions(lessScored, opts),
		size: headerLen}
}

// Decode decodes and checks a zset value: the checks of DecodeZSet, in one pass over each order.
func (zsetType) Decode(b []byte) (Value, error) {
	t, err := parseChecked(b, FormatZSet, 4, "zset")
	if err != nil {
		return nil, err
	}
	z := newZSet()
	buf := bytes.Clone(t.area) // the members' names point into one copy
	ms := make([]zMember, t.n)
	for i := range ms {
		start, end, _ := t.span(i) // checked by checkTable
		e := buf[start:end:end]
		if len(e) < zEntryMin {
			return nil, wrongType("corrupt zset: entry %d has no score", i)
		}
		m := &ms[i]
		m.name, m.score = e[zEntryMin:], math.Float64frombits(binary.BigEndian.Uint64(e))
		if err := checkScore(i, m.score); err != nil {
			return nil, err
		}
		if i > 0 && bytes.Compare(ms[i-1].name, m.name) >= 0 {
			return nil, wrongType("zset value: member %d is not after member %d", i, i-1)
		}
		z.byMember.Load(m)
		z.names += len(m.name)
	}
	for p := 0; p < t.n; p++ {
		o, err := t.ordAt(p)
		if err != nil {
			return nil, err
		}
		m := &ms[o]
		if p > 0 {
			if prev, _ := z.byScore.Max(); !lessScored(prev, m) {
				return nil, wrongType("zset value: score position %d is not after %d", p, p-1)
			}
		}
		z.byScore.Load(m)
	}
	z.size = len(b)
	if t.n == 0 {
		z.size = headerLen
	}
	return z, nil
}

func (z *zsetValue) Size() int { return z.size }
func (z *zsetValue) Mem() int  { return 2*z.names + z.byMember.Len()*zMemberMem + 256 }

// entrySize is what a member adds to the encoding: offset, ordinal, score, name.
func zEntrySize(name []byte) int { return 4 + 4 + zEntryMin + len(name) }

// AppendEncoded writes the value in the zset encoding (PROCESSORS.md, "zset"): one walk of
// each order, into a buffer grown once.
func (z *zsetValue) AppendEncoded(dst []byte) []byte {
	n := z.byMember.Len()
	start := len(dst)
	dst = slices.Grow(dst, z.size)[:start+z.size]
	out := dst[start:]
	out[0] = FormatZSet
	binary.BigEndian.PutUint32(out[1:], uint32(n))
	offs, mid, area := out[headerLen:], out[headerLen+4*n:], out[headerLen+8*n:]
	pos, i := 0, 0
	z.byMember.Scan(func(m *zMember) bool {
		binary.BigEndian.PutUint32(offs[4*i:], uint32(pos))
		m.ord = i
		binary.BigEndian.PutUint64(area[pos:], math.Float64bits(m.score))
		pos += zEntryMin + copy(area[pos+zEntryMin:], m.name)
		i++
		return true
	})
	p := 0
	z.byScore.Scan(func(m *zMember) bool {
		binary.BigEndian.PutUint32(mid[4*p:], uint32(m.ord))
		p++
		return true
	})
	return dst
}

// find returns the member named name, if there is one.
func (z *zsetValue) find(name []byte) (*zMember, bool) {
	z.probe.name = name
	m, ok := z.byMember.Get(&z.probe)
	z.probe.name = nil
	return m, ok
}

// below returns how many members are below m in the score order.
func (z *zsetValue) below(m *zMember) int {
	lo, hi := 0, z.byScore.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x, _ := z.byScore.GetAt(mid); lessScored(x, m) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// scoreBelow returns how many members have a score below bound, or, with orEqual, at or below.
func (z *zsetValue) scoreBelow(bound float64, orEqual bool) int {
	lo, hi := 0, z.byScore.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x, _ := z.byScore.GetAt(mid); x.score < bound || orEqual && x.score == bound {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (z *zsetValue) insert(m *zMember) {
	z.byMember.Set(m)
	z.byScore.Set(m)
	z.size += zEntrySize(m.name)
	z.names += len(m.name)
}

func (z *zsetValue) remove(m *zMember) {
	z.byMember.Delete(m)
	z.byScore.Delete(m)
	z.size -= zEntrySize(m.name)
	z.names -= len(m.name)
}

// rescore moves m to score in the score order.
func (z *zsetValue) rescore(m *zMember, score float64) {
	z.byScore.Delete(m)
	m.score = score
	z.byScore.Set(m)
}

// Undo takes back the last Exec's changes, newest first.
func (z *zsetValue) Undo() {
	for i := len(z.undo) - 1; i >= 0; i-- {
		u := z.undo[i]
		switch u.kind {
		case ZAdded:
			z.remove(u.m)
		case ZUpdated:
			z.rescore(u.m, u.old)
		case zRemoved:
			z.insert(u.m)
		}
	}
	clear(z.undo)
	z.undo = z.undo[:0]
}

// Exec runs one call of the zset processor (PROCESSORS.md, "zset").
func (z *zsetValue) Exec(in Input, out *Output) error {
	clear(z.undo)
	z.undo = z.undo[:0]
	r, cmd, err := beginCall(in, out, "zset sub-command")
	if err != nil {
		return err
	}
	n := z.byMember.Len()
	switch cmd {
	case ZSetCmdAdd, ZSetCmdIncr:
		return z.update(&r, out, cmd)
	case ZSetCmdAddMany:
		return z.addMany(&r, out)
	case ZSetCmdRank:
		return z.rank(&r, out)
	case ZSetCmdTop:
		count := r.u("count")
		if err := r.end(); err != nil {
			return err
		}
		return z.emit(out, 0, n, true, 0, count)
	case ZSetCmdRange:
		return z.scoreRange(&r, out)
	case ZSetCmdRem:
		return z.rem(&r, out)
	case ZSetCmdCard:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(n))
		return nil
	}
	return badArgs("zset has no sub-command %q", cmd)
}

// update serves add and incr of one member.
func (z *zsetValue) update(r *reader, out *Output, cmd byte) error {
	var flags byte
	if cmd == ZSetCmdAdd {
		flags = r.byte1("flags")
	}
	arg := r.f64("score")
	member := r.bytes("member")
	if err := r.end(); err != nil {
		return err
	}
	if err := checkUpdate(flags, arg); err != nil {
		return err
	}
	if err := out.Charge(2 * searchCost(z.byMember.Len())); err != nil {
		return err
	}
	status, score, err := z.apply(out, cmd, flags, arg, member)
	if err != nil {
		return err
	}
	out.Result = appendF64(append(out.Result, status), score)
	return nil
}

// zPair is one score/member pair of an add of several.
type zPair struct {
	score  float64
	member []byte
}

// addMany serves add of several pairs (Redis's ZADD key score member [score member...]): each
// applied in order, as one add after the other (a member given twice takes the last score); the
// result is how many members were added. Any refusal changes nothing.
func (z *zsetValue) addMany(r *reader, out *Output) error {
	flags := r.byte1("flags")
	n := r.count("pair", 9) // a score and at least a member's length
	pairs := make([]zPair, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		pairs = append(pairs, zPair{score: r.f64("score"), member: r.bytes("member")})
	}
	if err := r.end(); err != nil {
		return err
	}
	if n == 0 {
		return badArgs("zset add: no score/member pair given")
	}
	for _, p := range pairs {
		if err := checkUpdate(flags, p.score); err != nil {
			return err
		}
	}
	if err := out.Charge(n * 2 * searchCost(z.byMember.Len()+n)); err != nil {
		return err
	}
	added := 0
	for _, p := range pairs {
		status, _, err := z.apply(out, ZSetCmdAdd, flags, p.score, p.member)
		if err != nil {
			z.Undo() // the pairs before it
			return err
		}
		if status == ZAdded {
			added++
		}
	}
	out.Result = appendU(out.Result, uint64(added))
	return nil
}

// checkUpdate refuses an add's flags or a score or delta that no member may take.
func checkUpdate(flags byte, arg float64) error {
	if err := checkAddFlags(flags); err != nil {
		return err
	}
	if !finite(arg) {
		return badArgs("score %v is not a finite number", arg)
	}
	return nil
}

// apply sets member's score after an add or an incr of arg, and returns its status and score;
// Undo takes it back.
func (z *zsetValue) apply(out *Output, cmd, flags byte, arg float64, member []byte) (byte, float64, error) {
	m, found := z.find(member)
	var old float64
	if found {
		old = m.score
	}
	score, status, err := zsetDecide(cmd, flags, arg, old, found)
	if err != nil {
		return 0, 0, err
	}
	if score == 0 {
		score = 0 // -0 is stored as +0
	}
	size := z.size
	if status == ZAdded {
		size += zEntrySize(member)
	}
	if (status == ZAdded || status == ZUpdated) && out.maxValue > 0 && size > out.maxValue {
		return 0, 0, tooLarge("new value of %d bytes over the limit of %d", size, out.maxValue)
	}
	switch status {
	case ZAdded:
		m = &zMember{name: bytes.Clone(member), score: score}
		z.insert(m)
		z.undo = append(z.undo, zUndo{m: m, kind: ZAdded})
		out.Action = Set
	case ZUpdated:
		z.rescore(m, score)
		z.undo = append(z.undo, zUndo{m: m, old: old, kind: ZUpdated})
		out.Action = Set
	}
	return status, score, nil
}

// zsetDecide returns the member's score after an add or an incr, and the status.
func zsetDecide(cmd, flags byte, arg, old float64, found bool) (float64, byte, error) {
	score := arg
	if cmd == ZSetCmdIncr && found {
		score = old + arg
		if !finite(score) {
			return 0, 0, badArgs("score %v + %v is not a finite number", old, arg)
		}
	}
	switch {
	case !found && flags&ZAddXX != 0:
		return 0, ZAbsent, nil
	case !found:
		return score, ZAdded, nil
	case flags&ZAddNX != 0, score == old,
		flags&ZAddGT != 0 && score <= old, flags&ZAddLT != 0 && score >= old:
		return old, ZUnchanged, nil
	}
	return score, ZUpdated, nil
}

func (z *zsetValue) rank(r *reader, out *Output) error {
	order := r.byte1("order")
	member := r.bytes("member")
	if err := r.end(); err != nil {
		return err
	}
	if order > 1 {
		return badArgs("zset rank order %d: 0 is ascending, 1 descending", order)
	}
	n := z.byMember.Len()
	if err := out.Charge(2 * searchCost(n)); err != nil {
		return err
	}
	m, found := z.find(member)
	if !found {
		out.Result = append(out.Result, 0)
		return nil
	}
	p := z.below(m)
	if order == 1 {
		p = n - 1 - p
	}
	out.Result = appendF64(appendU(append(out.Result, 1), uint64(p)), m.score)
	return nil
}

func (z *zsetValue) scoreRange(r *reader, out *Output) error {
	lo, hi := r.f64("min"), r.f64("max")
	flags := r.byte1("flags")
	offset, limit := r.u("offset"), r.u("limit")
	if err := r.end(); err != nil {
		return err
	}
	switch {
	case math.IsNaN(lo) || math.IsNaN(hi):
		return badArgs("zset range bound is NaN")
	case flags&^(ZRangeMinExclusive|ZRangeMaxExclusive|ZRangeDescending) != 0:
		return badArgs("unknown zset range flags 0x%02x", flags)
	}
	if err := out.Charge(2 * searchCost(z.byMember.Len())); err != nil {
		return err
	}
	from := z.scoreBelow(lo, flags&ZRangeMinExclusive != 0)
	to := z.scoreBelow(hi, flags&ZRangeMaxExclusive == 0)
	if limit == 0 {
		limit = math.MaxUint64
	}
	return z.emit(out, from, max(from, to), flags&ZRangeDescending != 0, offset, limit)
}

// emit writes the result of top and range: the members at score positions [from, to),
// ascending or descending, skipping offset of them and giving at most limit.
func (z *zsetValue) emit(out *Output, from, to int, desc bool, offset, limit uint64) error {
	count := uint64(0)
	if avail := uint64(to - from); offset < avail {
		count = min(avail-offset, limit)
	}
	if err := out.Charge(int(count)); err != nil {
		return err
	}
	out.Result = appendU(out.Result, count)
	if count == 0 {
		return nil
	}
	var err error
	left := count
	each := func(m *zMember) bool {
		out.Result = appendF64(appendBytes(out.Result, m.name), m.score)
		if out.resultFull() {
			err = tooLarge("result over the limit of %d bytes", out.maxResult)
			return false
		}
		left--
		return left > 0
	}
	if desc {
		first, _ := z.byScore.GetAt(to - 1 - int(offset))
		z.byScore.Descend(first, each)
	} else {
		first, _ := z.byScore.GetAt(from + int(offset))
		z.byScore.Ascend(first, each)
	}
	return err
}

func (z *zsetValue) rem(r *reader, out *Output) error {
	kvs, err := readKeys(r, &z.sc, false, "member")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs) * searchCost(z.byMember.Len())); err != nil {
		return err
	}
	gone := z.removed[:0]
	for i := range kvs {
		if m, found := z.find(kvs[i].key); found {
			gone = append(gone, m)
		}
	}
	clear(z.sc.kvs)
	out.Result = appendU(out.Result, uint64(len(gone)))
	switch {
	case len(gone) == 0:
	case len(gone) == z.byMember.Len():
		out.Action = Delete // an empty set is no set, as in Redis
	default:
		for _, m := range gone {
			z.remove(m)
			z.undo = append(z.undo, zUndo{m: m, kind: zRemoved})
		}
		out.Action = Set
	}
	clear(gone)
	z.removed = gone[:0]
	return nil
}
