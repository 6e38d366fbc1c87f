package processor

// FormatList is the format byte of a list value, version 1.
const FormatList = 0x02

// The list's sub-commands (PROCESSORS.md, "list").
const (
	ListCmdPushLeft  = 'l' // cap u, count u, count × element bytes → u: the new length
	ListCmdPushRight = 'r' // like ListCmdPushLeft, at the tail
	ListCmdRange     = 'g' // start i, stop i → u count, count × element bytes
	ListCmdTrim      = 't' // start i, stop i → u: the new length
	ListCmdLen       = 'n' // nothing → u: the length
)

// A list value is the table layout with no mid table; entry i is element i, head first.

// List is the built-in list processor: a list of byte strings, capped on push (recent
// events, a feed).
func List(in Input, out *Output) error {
	r := reader{b: in.Args, kind: ErrBadArgs}
	cmd := r.byte1("list sub-command")
	if r.err != nil {
		return r.err
	}
	t, err := parseTable(in.Value, FormatList, 0, "list")
	if err != nil {
		return err
	}
	if err := out.Charge(1); err != nil {
		return err
	}
	switch cmd {
	case ListCmdPushLeft, ListCmdPushRight:
		return listPush(&t, &r, out, cmd == ListCmdPushLeft)
	case ListCmdRange, ListCmdTrim:
		start, stop := r.i("start"), r.i("stop")
		if err := r.end(); err != nil {
			return err
		}
		from, to := listRange(t.n, start, stop)
		if cmd == ListCmdRange {
			return listGet(&t, from, to, out)
		}
		return listTrim(&t, from, to, out)
	case ListCmdLen:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(t.n))
		return nil
	}
	return badArgs("list has no sub-command %q", cmd)
}

// listRange turns Redis-style inclusive indices (negative ones count from the tail: -1 is the
// last element) into the half-open range [from, to) of a list of n, clipped; from == to when
// it is empty.
func listRange(n int, start, stop int64) (from, to int) {
	n64 := int64(n)
	if start < 0 {
		start = max(start+n64, 0)
	}
	if stop < 0 {
		stop += n64
	}
	if start >= n64 || stop < start {
		return 0, 0
	}
	return int(start), int(min(stop, n64-1)) + 1
}

func listPush(t *table, r *reader, out *Output, left bool) error {
	capacity := r.u("cap")
	m := r.count("element", 1)
	s := &out.scratch
	elems := s.kvs[:0]
	for i := 0; i < m && r.err == nil; i++ {
		elems = append(elems, kv{key: r.bytes("element")})
	}
	s.kvs = elems
	if err := r.end(); err != nil {
		return err
	}
	if m == 0 {
		return badArgs("no element given")
	}
	total := uint64(t.n) + uint64(m)
	if capacity == 0 || capacity > total {
		capacity = total // cap 0: no cap
	}
	keep := int(capacity)
	if err := out.Charge(keep); err != nil {
		return err
	}
	segs := s.segs[:0]
	newKept := min(m, keep) // the newest pushed elements survive: the last ones of the call
	if left {
		for i := m - 1; i >= m-newKept; i-- { // pushed one by one at the head: the last is first
			segs = append(segs, newSeg(elems[i].key))
		}
		segs = appendOld(segs, 0, keep-newKept)
	} else {
		segs = appendOld(segs, t.n-(keep-newKept), t.n)
		for i := m - newKept; i < m; i++ {
			segs = append(segs, newSeg(elems[i].key))
		}
	}
	s.segs = segs
	out.Result = appendU(out.Result, uint64(keep))
	return setRebuilt(out, FormatList, t, segs)
}

func listGet(t *table, from, to int, out *Output) error {
	if err := out.Charge(to - from); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(to-from))
	for i := from; i < to; i++ {
		e, err := t.entry(i)
		if err != nil {
			return err
		}
		out.Result = appendBytes(out.Result, e)
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return nil
}

func listTrim(t *table, from, to int, out *Output) error {
	out.Result = appendU(out.Result, uint64(to-from))
	switch {
	case from == 0 && to == t.n:
		return nil // nothing to trim
	case from == to:
		out.Action = Delete // an empty list is no list, as in Redis
		return nil
	}
	if err := out.Charge(to - from); err != nil {
		return err
	}
	s := &out.scratch
	s.segs = append(s.segs[:0], oldSeg(from, to))
	return setRebuilt(out, FormatList, t, s.segs)
}
