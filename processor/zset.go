package processor

import (
	"bytes"
	"encoding/binary"
	"math"
)

// FormatZSet is the format byte of a sorted-set value, version 1.
const FormatZSet = 0x03

// The sorted set's sub-commands (PROCESSORS.md, "zset").
const (
	ZSetCmdAdd   = 'a' // flags byte, score f64, member bytes → status byte, score f64
	ZSetCmdIncr  = 'i' // delta f64, member bytes → status byte, score f64
	ZSetCmdRank  = 'r' // order byte (0 ascending, 1 descending), member bytes → found byte, [rank u, score f64]
	ZSetCmdTop   = 't' // count u → u count, count × (member bytes, score f64), highest first
	ZSetCmdRange = 's' // min f64, max f64, flags byte, offset u, limit u → like ZSetCmdTop
	ZSetCmdRem   = 'd' // count u, count × member bytes → u: members removed
	ZSetCmdCard  = 'n' // nothing → u: number of members
)

// Flags of ZSetCmdAdd, as Redis's ZADD.
const (
	ZAddNX = 1 << 0 // only add new members
	ZAddXX = 1 << 1 // only update existing members
	ZAddGT = 1 << 2 // update an existing member only if the new score is greater
	ZAddLT = 1 << 3 // update an existing member only if the new score is less
)

// Flags of ZSetCmdRange.
const (
	ZRangeMinExclusive = 1 << 0 // score > min rather than >= min
	ZRangeMaxExclusive = 1 << 1 // score < max rather than <= max
	ZRangeDescending   = 1 << 2 // from max down to min
)

// The status byte of ZSetCmdAdd and ZSetCmdIncr.
const (
	ZUnchanged = 0 // the member exists and keeps its score (which follows)
	ZAdded     = 1 // the member was added with the score that follows
	ZUpdated   = 2 // the member's score changed to the one that follows
	ZAbsent    = 3 // the member does not exist and was not added (ZAddXX); the score is 0
)

// A zset value is the table layout with a mid table of n × uint32 BE: the ordinals of the
// members in score order, ascending by (score, member). Entry i is
//
//	score f64 (8 bytes), member (the rest of the entry)
//
// with the members in strictly ascending byte order, so entry i is member ordinal i.

const zEntryMin = 8

// ZSet is the built-in sorted-set processor: members with float64 scores (a leaderboard).
func ZSet(in Input, out *Output) error {
	r := reader{b: in.Args, kind: ErrBadArgs}
	cmd := r.byte1("zset sub-command")
	if r.err != nil {
		return r.err
	}
	t, err := parseTable(in.Value, FormatZSet, 4, "zset")
	if err != nil {
		return err
	}
	if err := out.Charge(1); err != nil {
		return err
	}
	switch cmd {
	case ZSetCmdAdd, ZSetCmdIncr:
		return zsetUpdate(&t, &r, in.Value, out, cmd)
	case ZSetCmdRank:
		return zsetRank(&t, &r, out)
	case ZSetCmdTop:
		count := r.u("count")
		if err := r.end(); err != nil {
			return err
		}
		return zsetEmit(&t, out, 0, t.n, true, 0, count)
	case ZSetCmdRange:
		return zsetRange(&t, &r, out)
	case ZSetCmdRem:
		return zsetRem(&t, &r, out)
	case ZSetCmdCard:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(t.n))
		return nil
	}
	return badArgs("zset has no sub-command %q", cmd)
}

// zEntry returns member ordinal i's member and score.
func (t *table) zEntry(i int) (member []byte, score float64, err error) {
	e, err := t.entry(i)
	if err != nil {
		return nil, 0, err
	}
	if len(e) < zEntryMin {
		return nil, 0, wrongType("corrupt zset: entry %d has no score", i)
	}
	return e[zEntryMin:], math.Float64frombits(binary.BigEndian.Uint64(e)), nil
}

// ordAt returns the ordinal of the member at score position p.
func (t *table) ordAt(p int) (int, error) {
	o := u32(t.mid[4*p:])
	if o >= t.n {
		return 0, wrongType("corrupt zset: score position %d names member %d of %d", p, o, t.n)
	}
	return o, nil
}

// atPos returns the member at score position p.
func (t *table) atPos(p int) (ord int, member []byte, score float64, err error) {
	if ord, err = t.ordAt(p); err != nil {
		return 0, nil, 0, err
	}
	member, score, err = t.zEntry(ord)
	return ord, member, score, err
}

// cmpScored orders (score, member) pairs: by score, then by member.
func cmpScored(s1 float64, m1 []byte, s2 float64, m2 []byte) int {
	switch {
	case s1 < s2:
		return -1
	case s1 > s2:
		return 1
	}
	return bytes.Compare(m1, m2)
}

// searchMember returns the ordinal of member, or where it would be inserted.
func (t *table) searchMember(member []byte) (int, bool, error) {
	lo, hi := 0, t.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		mb, _, err := t.zEntry(m)
		if err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(mb, member); {
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

// countBelow returns the number of score positions whose (score, member) is below
// (score, member), or, with orEqual, at or below it.
func (t *table) countBelow(score float64, member []byte, orEqual bool) (int, error) {
	lo, hi := 0, t.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		_, mb, s, err := t.atPos(m)
		if err != nil {
			return 0, err
		}
		if c := cmpScored(s, mb, score, member); c < 0 || orEqual && c == 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, nil
}

// countScoreBelow returns the number of score positions whose score is below bound, or, with
// orEqual, at or below it.
func (t *table) countScoreBelow(bound float64, orEqual bool) (int, error) {
	lo, hi := 0, t.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		_, _, s, err := t.atPos(m)
		if err != nil {
			return 0, err
		}
		if s < bound || orEqual && s == bound {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, nil
}

// position returns the score position of member ordinal k, whose score is score.
func (t *table) position(k int, score float64, member []byte) (int, error) {
	p, err := t.countBelow(score, member, false)
	if err != nil {
		return 0, err
	}
	if p < t.n {
		if o, err := t.ordAt(p); err == nil && o == k {
			return p, nil
		}
	}
	return 0, wrongType("corrupt zset: member %d is not in the score order", k)
}
