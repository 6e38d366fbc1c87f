package processor

import (
	"encoding/binary"
	"math"
	"slices"
)

func putU32(b []byte, i, v int) { binary.BigEndian.PutUint32(b[4*i:], uint32(v)) }

func checkAddFlags(flags byte) error {
	switch {
	case flags&^(ZAddNX|ZAddXX|ZAddGT|ZAddLT) != 0:
		return badArgs("unknown zset add flags 0x%02x", flags)
	case flags&ZAddNX != 0 && flags&(ZAddXX|ZAddGT|ZAddLT) != 0:
		return badArgs("zset add: NX cannot go with XX, GT or LT")
	case flags&ZAddGT != 0 && flags&ZAddLT != 0:
		return badArgs("zset add: GT and LT together")
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// zsetUpdate serves add and incr.
func zsetUpdate(t *table, r *reader, cur []byte, out *Output, cmd byte) error {
	var flags byte
	if cmd == ZSetCmdAdd {
		flags = r.byte1("flags")
	}
	arg := r.f64("score")
	member := r.bytes("member")
	if err := r.end(); err != nil {
		return err
	}
	if err := checkAddFlags(flags); err != nil {
		return err
	}
	if !finite(arg) {
		return badArgs("score %v is not a finite number", arg)
	}
	if err := out.Charge(2 * searchCost(t.n)); err != nil {
		return err
	}
	k, found, err := t.searchMember(member)
	if err != nil {
		return err
	}
	var old float64
	if found {
		if _, old, err = t.zEntry(k); err != nil {
			return err
		}
	}
	score, status, err := zsetDecide(cmd, flags, arg, old, found)
	if err != nil {
		return err
	}
	if score == 0 {
		score = 0 // -0 is stored as +0
	}
	out.Result = appendF64(append(out.Result, status), score)
	switch {
	case status == ZAdded:
		return zsetInsert(t, k, score, member, out)
	case status == ZUpdated:
		return zsetMove(t, cur, k, old, score, member, out)
	}
	return nil
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

// zsetMove changes the score of member ordinal k from old to score: the value keeps its size,
// so it is copied whole, the score order is shifted between the old and the new position
// (one memmove), and the entry's score is rewritten in place.
func zsetMove(t *table, cur []byte, k int, old, score float64, member []byte, out *Output) error {
	p, err := t.position(k, old, member)
	if err != nil {
		return err
	}
	q, err := t.countBelow(score, member, false)
	if err != nil {
		return err
	}
	if old < score {
		q-- // the member itself, at its old score, was counted
	}
	if q < 0 || q >= t.n {
		return wrongType("corrupt zset: score order out of order")
	}
	if err := out.Charge(t.n); err != nil {
		return err
	}
	if len(cur) > out.maxValue && out.maxValue > 0 {
		return tooLarge("new value of %d bytes over the limit of %d", len(cur), out.maxValue)
	}
	v := append(out.Value[:0], cur...)
	mid := v[headerLen+4*t.n : headerLen+8*t.n]
	if q < p {
		copy(mid[4*(q+1):4*(p+1)], mid[4*q:4*p])
	} else {
		copy(mid[4*p:4*q], mid[4*(p+1):4*(q+1)])
	}
	putU32(mid, q, k)
	start, _, _ := t.span(k) // checked by zEntry in the search
	binary.BigEndian.PutUint64(v[headerLen+8*t.n+start:], math.Float64bits(score))
	out.Value, out.Action = v, Set
	return nil
}

// zsetInsert adds member, with score, as member ordinal k.
func zsetInsert(t *table, k int, score float64, member []byte, out *Output) error {
	q, err := t.countBelow(score, member, false)
	if err != nil {
		return err
	}
	if err := out.Charge(t.n + 1); err != nil {
		return err
	}
	s := &out.scratch
	s.buf = append(appendF64(s.buf[:0], score), member...)
	s.segs = appendOld(append(appendOld(s.segs[:0], 0, k), newSeg(s.buf)), k, t.n)
	v, mid, _, err := rebuild(out.Value, FormatZSet, t, s.segs, 4, out.maxValue)
	if err != nil {
		return err
	}
	if len(mid) != 4*(t.n+1) || q > t.n {
		return wrongType("corrupt zset: score order out of order")
	}
	if err := shiftOrds(mid[:4*q], t.mid[:4*q], t.n, k); err != nil {
		return err
	}
	putU32(mid, q, k)
	if err := shiftOrds(mid[4*q+4:], t.mid[4*q:], t.n, k); err != nil {
		return err
	}
	out.Value, out.Action = v, Set
	return nil
}

// shiftOrds copies the member ordinals of src into dst (as long), adding 1 to those at or
// above k; each must be below n.
func shiftOrds(dst, src []byte, n, k int) error {
	for i := 0; i+4 <= len(src) && i+4 <= len(dst); i += 4 {
		o := int(binary.BigEndian.Uint32(src[i:]))
		if o >= n {
			return wrongType("corrupt zset: score order names member %d of %d", o, n)
		}
		if o >= k {
			o++
		}
		binary.BigEndian.PutUint32(dst[i:], uint32(o))
	}
	return nil
}

// below returns the number of gone (ascending) below o.
func below(gone []int, o int) int {
	if len(gone) > 8 {
		j, _ := slices.BinarySearch(gone, o)
		return j
	}
	j := 0
	for _, g := range gone { // a fixed trip count and no early exit: no branch to mispredict
		if g < o {
			j++
		}
	}
	return j
}

func zsetRank(t *table, r *reader, out *Output) error {
	order := r.byte1("order")
	member := r.bytes("member")
	if err := r.end(); err != nil {
		return err
	}
	if order > 1 {
		return badArgs("zset rank order %d: 0 is ascending, 1 descending", order)
	}
	if err := out.Charge(2 * searchCost(t.n)); err != nil {
		return err
	}
	k, found, err := t.searchMember(member)
	if err != nil || !found {
		out.Result = append(out.Result, 0)
		return err
	}
	_, score, err := t.zEntry(k)
	if err != nil {
		return err
	}
	p, err := t.position(k, score, member)
	if err != nil {
		return err
	}
	if order == 1 {
		p = t.n - 1 - p
	}
	out.Result = appendF64(appendU(append(out.Result, 1), uint64(p)), score)
	return nil
}

func zsetRange(t *table, r *reader, out *Output) error {
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
	if err := out.Charge(2 * searchCost(t.n)); err != nil {
		return err
	}
	from, err := t.countScoreBelow(lo, flags&ZRangeMinExclusive != 0)
	if err != nil {
		return err
	}
	to, err := t.countScoreBelow(hi, flags&ZRangeMaxExclusive == 0)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = math.MaxUint64
	}
	return zsetEmit(t, out, from, max(from, to), flags&ZRangeDescending != 0, offset, limit)
}

// zsetEmit writes the result of top and range: the members at score positions [from, to),
// ascending or descending, skipping offset of them and giving at most limit.
func zsetEmit(t *table, out *Output, from, to int, desc bool, offset, limit uint64) error {
	count := uint64(0)
	if avail := uint64(to - from); offset < avail {
		count = min(avail-offset, limit)
	}
	if err := out.Charge(int(count)); err != nil {
		return err
	}
	out.Result = appendU(out.Result, count)
	for i := 0; i < int(count); i++ {
		p := from + int(offset) + i
		if desc {
			p = to - 1 - int(offset) - i
		}
		_, member, score, err := t.atPos(p)
		if err != nil {
			return err
		}
		out.Result = appendF64(appendBytes(out.Result, member), score)
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return nil
}

func zsetRem(t *table, r *reader, out *Output) error {
	s := &out.scratch
	kvs, err := readKeys(r, s, false, "member")
	if err != nil {
		return err
	}
	if err := out.Charge(len(kvs)*searchCost(t.n) + t.n); err != nil {
		return err
	}
	gone, segs, prev := s.idx[:0], s.segs[:0], 0
	for i := range kvs {
		k, found, err := t.searchMember(kvs[i].key)
		if err != nil {
			return err
		}
		if found {
			gone = append(gone, k) // ascending, as the members are
			segs = appendOld(segs, prev, k)
			prev = k + 1
		}
	}
	s.idx, s.segs = gone, appendOld(segs, prev, t.n)
	out.Result = appendU(out.Result, uint64(len(gone)))
	switch {
	case len(gone) == 0:
		return nil
	case len(gone) == t.n:
		out.Action = Delete // an empty set is no set, as in Redis
		return nil
	}
	return zsetRebuildWithout(t, gone, out)
}

// zsetRebuildWithout rebuilds t without the member ordinals gone (ascending), whose segments
// are in out.scratch.segs.
func zsetRebuildWithout(t *table, gone []int, out *Output) error {
	v, mid, n, err := rebuild(out.Value, FormatZSet, t, out.scratch.segs, 4, out.maxValue)
	if err != nil {
		return err
	}
	if len(gone) == 1 {
		return zsetWithoutOne(t, gone[0], v, mid, n, out)
	}
	w := 0
	for i := 0; i+4 <= len(t.mid); i += 4 {
		o := int(binary.BigEndian.Uint32(t.mid[i:]))
		if o >= t.n {
			return wrongType("corrupt zset: score position %d names member %d of %d", i/4, o, t.n)
		}
		j := below(gone, o)
		if j < len(gone) && gone[j] == o {
			continue // removed
		}
		if w+4 > len(mid) {
			return wrongType("corrupt zset: score order out of order")
		}
		binary.BigEndian.PutUint32(mid[w:], uint32(o-j))
		w += 4
	}
	if w != 4*n {
		return wrongType("corrupt zset: score order out of order")
	}
	out.Value, out.Action = v, Set
	return nil
}

// zsetWithoutOne finishes the removal of member ordinal k alone: the score order without k,
// the ordinals above it one less. It is the general loop of zsetRebuildWithout for one
// removal, without the search of the removed ordinals per entry: three to five times faster.
func zsetWithoutOne(t *table, k int, v, mid []byte, n int, out *Output) error {
	w, seen := 0, false
	for i := 0; i+4 <= len(t.mid); i += 4 {
		o := int(binary.BigEndian.Uint32(t.mid[i:]))
		if o == k && !seen {
			seen = true
			continue
		}
		if o == k || o >= t.n {
			return wrongType("corrupt zset: score order out of order")
		}
		if o > k {
			o--
		}
		if w+4 > len(mid) {
			return wrongType("corrupt zset: score order out of order")
		}
		binary.BigEndian.PutUint32(mid[w:], uint32(o))
		w += 4
	}
	if w != 4*n {
		return wrongType("corrupt zset: score order out of order")
	}
	out.Value, out.Action = v, Set
	return nil
}
