package processor

// Decoders of the built-ins' results, for callers. Each fails with an error wrapping
// ErrMalformed on bytes that are not a result of its shape, never panics, and never allocates
// more than its input can hold. Returned byte slices alias the input.

// Optional is one answer of hash get.
type Optional struct {
	Value []byte
	Found bool
}

// ScoreResult is the result of zset add and incr.
type ScoreResult struct {
	Status byte    // ZUnchanged, ZAdded, ZUpdated or ZAbsent
	Score  float64 // the member's score after the call (0 with ZAbsent)
}

// RankResult is the result of zset rank.
type RankResult struct {
	Found bool
	Rank  uint64  // 0-based, in the order asked for
	Score float64 // the member's score
}

func resultReader(res []byte) reader { return reader{b: res, kind: ErrMalformed} }

// finish returns v, or the zero value and r's error.
func finish[T any](v T, r *reader) (T, error) {
	if err := r.end(); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// DecodeCount decodes a count: the result of hash set, del and len, list push, trim and len,
// zset remove and card.
func DecodeCount(res []byte) (uint64, error) {
	r := resultReader(res)
	n := r.u("count")
	return finish(n, &r)
}

// DecodeOptionals decodes the result of hash get.
func DecodeOptionals(res []byte) ([]Optional, error) {
	r := resultReader(res)
	n := r.count("answers", 1)
	out := make([]Optional, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		switch found := r.byte1("found"); found {
		case 0:
			out = append(out, Optional{})
		case 1:
			out = append(out, Optional{Value: r.bytes("value"), Found: true})
		default:
			r.fail("found byte %d", found)
		}
	}
	return finish(out, &r)
}

// DecodeFields decodes the result of hash get-all.
func DecodeFields(res []byte) ([]Field, error) {
	r := resultReader(res)
	n := r.count("fields", 2)
	out := make([]Field, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.bytes("field")
		out = append(out, Field{Name: string(name), Value: r.bytes("value")})
	}
	return finish(out, &r)
}

// DecodeElements decodes the result of list range.
func DecodeElements(res []byte) ([][]byte, error) {
	r := resultReader(res)
	n := r.count("elements", 1)
	out := make([][]byte, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.bytes("element"))
	}
	return finish(out, &r)
}

// DecodeMembers decodes the result of zset top and range-by-score.
func DecodeMembers(res []byte) ([]Member, error) {
	r := resultReader(res)
	n := r.count("members", 9)
	out := make([]Member, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.bytes("member")
		out = append(out, Member{Name: string(name), Score: r.f64("score")})
	}
	return finish(out, &r)
}

// DecodeScore decodes the result of zset add and incr.
func DecodeScore(res []byte) (ScoreResult, error) {
	r := resultReader(res)
	s := ScoreResult{Status: r.byte1("status"), Score: r.f64("score")}
	if r.err == nil && s.Status > ZAbsent {
		r.fail("status %d", s.Status)
	}
	return finish(s, &r)
}

// DecodeRank decodes the result of zset rank.
func DecodeRank(res []byte) (RankResult, error) {
	r := resultReader(res)
	var rr RankResult
	switch found := r.byte1("found"); {
	case r.err != nil:
	case found == 1:
		rr = RankResult{Found: true, Rank: r.u("rank"), Score: r.f64("score")}
	case found != 0:
		r.fail("found byte %d", found)
	}
	return finish(rr, &r)
}
