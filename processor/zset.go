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
	ZSetCmdAdd     = 'a' // flags byte, score f64, member bytes → status byte, score f64
	ZSetCmdAddMany = 'm' // flags byte, count u, count × (score f64, member bytes) → u: members added
	ZSetCmdIncr    = 'i' // delta f64, member bytes → status byte, score f64
	ZSetCmdRank    = 'r' // order byte (0 ascending, 1 descending), member bytes → found byte, [rank u, score f64]
	ZSetCmdTop     = 't' // count u → u count, count × (member bytes, score f64), highest first
	ZSetCmdRange   = 's' // min f64, max f64, flags byte, offset u, limit u → like ZSetCmdTop
	ZSetCmdRem     = 'd' // count u, count × member bytes → u: members removed
	ZSetCmdCard    = 'n' // nothing → u: number of members
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

// ZSet is the built-in sorted-set processor (members with float64 scores: a leaderboard) on
// encoded values: ZSetType's TypeFunc.
var ZSet = TypeFunc(ZSetType)

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
