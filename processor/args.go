package processor

// Builders of the built-ins' arguments, for callers (the SDK, pipecachectl, applications):
// each returns the argument bytes of one sub-command, as PROCESSORS.md specifies them.

// HashSetArgs returns the arguments of hash set: fields take the values given (a field given
// twice takes the last). Result: DecodeCount, the number of fields added.
func HashSetArgs(fields ...Field) []byte {
	b := appendU([]byte{HashCmdSet}, uint64(len(fields)))
	for _, f := range fields {
		b = appendBytes(appendString(b, f.Name), f.Value)
	}
	return b
}

// HashGetArgs returns the arguments of hash get. Result: DecodeOptionals, one per name.
func HashGetArgs(names ...string) []byte { return namesArgs(HashCmdGet, names) }

// HashDelArgs returns the arguments of hash delete. Result: DecodeCount, the number removed.
func HashDelArgs(names ...string) []byte { return namesArgs(HashCmdDel, names) }

// HashGetAllArgs returns the arguments of hash get-all. Result: DecodeFields.
func HashGetAllArgs() []byte { return []byte{HashCmdGetAll} }

// HashLenArgs returns the arguments of hash len. Result: DecodeCount.
func HashLenArgs() []byte { return []byte{HashCmdLen} }

func namesArgs(cmd byte, names []string) []byte {
	b := appendU([]byte{cmd}, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	return b
}

// ListPushArgs returns the arguments of a list push: elems go to the head (left) or the tail,
// one after the other (so a push of a, b, c to the head makes c the head), and the list is
// then cut to capacity elements, dropping the oldest (0: no cap). Result: DecodeCount, the
// new length.
func ListPushArgs(left bool, capacity uint64, elems ...[]byte) []byte {
	cmd := byte(ListCmdPushRight)
	if left {
		cmd = ListCmdPushLeft
	}
	b := appendU(appendU([]byte{cmd}, capacity), uint64(len(elems)))
	for _, e := range elems {
		b = appendBytes(b, e)
	}
	return b
}

// ListRangeArgs returns the arguments of list range: elements start to stop, inclusive,
// negative indices counting from the tail (-1 is the last), as Redis's LRANGE. Result:
// DecodeElements.
func ListRangeArgs(start, stop int64) []byte {
	return appendI(appendI([]byte{ListCmdRange}, start), stop)
}

// ListTrimArgs returns the arguments of list trim: keep elements start to stop, as Redis's
// LTRIM. Result: DecodeCount, the new length.
func ListTrimArgs(start, stop int64) []byte {
	return appendI(appendI([]byte{ListCmdTrim}, start), stop)
}

// ListLenArgs returns the arguments of list len. Result: DecodeCount.
func ListLenArgs() []byte { return []byte{ListCmdLen} }

// ZAddArgs returns the arguments of zset add: member's score becomes score, under flags
// (ZAddNX, ZAddXX, ZAddGT, ZAddLT). Result: DecodeScore.
func ZAddArgs(member string, score float64, flags byte) []byte {
	return appendString(appendF64([]byte{ZSetCmdAdd, flags}, score), member)
}

// ZAddManyArgs returns the arguments of zset add of several members at once (Redis's ZADD
// with several score/member pairs), each under flags as ZAddArgs's, applied in order. Result:
// DecodeCount, the number of members added.
func ZAddManyArgs(flags byte, members ...Member) []byte {
	b := appendU([]byte{ZSetCmdAddMany, flags}, uint64(len(members)))
	for _, m := range members {
		b = appendString(appendF64(b, m.Score), m.Name)
	}
	return b
}

// ZIncrArgs returns the arguments of zset incr: member's score grows by delta (a new member
// starts at 0). Result: DecodeScore.
func ZIncrArgs(member string, delta float64) []byte {
	return appendString(appendF64([]byte{ZSetCmdIncr}, delta), member)
}

// ZRankArgs returns the arguments of zset rank: member's 0-based position by ascending
// (score, member), or descending. Result: DecodeRank.
func ZRankArgs(member string, descending bool) []byte {
	order := byte(0)
	if descending {
		order = 1
	}
	return appendString([]byte{ZSetCmdRank, order}, member)
}

// ZTopArgs returns the arguments of zset top: the n highest members, highest first. Result:
// DecodeMembers.
func ZTopArgs(n uint64) []byte { return appendU([]byte{ZSetCmdTop}, n) }

// ZRangeArgs returns the arguments of zset range-by-score: the members with min <= score <=
// max (flags ZRangeMinExclusive, ZRangeMaxExclusive make a bound strict; ZRangeDescending
// goes from max down), skipping offset of them and giving at most limit (0: no limit).
// Result: DecodeMembers.
func ZRangeArgs(min, max float64, flags byte, offset, limit uint64) []byte {
	b := appendF64(appendF64([]byte{ZSetCmdRange}, min), max)
	return appendU(appendU(append(b, flags), offset), limit)
}

// ZRemArgs returns the arguments of zset remove. Result: DecodeCount, the number removed.
func ZRemArgs(members ...string) []byte { return namesArgs(ZSetCmdRem, members) }

// ZCardArgs returns the arguments of zset card. Result: DecodeCount.
func ZCardArgs() []byte { return []byte{ZSetCmdCard} }
