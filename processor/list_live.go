package processor

import (
	"bytes"
	"encoding/binary"
)

// The live list: its elements in a ring (a double-ended queue), so that a push or a pop at
// either end is O(1) and any element is one index away.

// ListType is the list Type (the built-in list processor).
var ListType Type = listType{}

type listType struct{}

// listElemMem is what an element costs beyond its bytes: its slot in the ring, and the
// allocator's rounding of its copy.
const listElemMem = 40

type listValue struct {
	ring    [][]byte
	head, n int
	size    int // the encoding's length
	bytes   int // of the elements
	undo    listUndo
	pushed  [][]byte // a push's arguments
}

// listUndo is what the last Exec changed: elements pushed at one end, and those dropped from
// the front and from the back (in list order).
type listUndo struct {
	pushed      int
	left        bool
	front, back [][]byte
}

func (listType) Empty() Value { return &listValue{size: headerLen} }

// Decode decodes and checks a list value, as DecodeList does.
func (listType) Decode(b []byte) (Value, error) {
	t, err := parseChecked(b, FormatList, 0, "list")
	if err != nil {
		return nil, err
	}
	l := &listValue{ring: make([][]byte, max(t.n, 4))}
	buf := bytes.Clone(t.area)
	for i := 0; i < t.n; i++ {
		start, end, _ := t.span(i) // checked by checkTable
		l.ring[i] = buf[start:end:end]
		l.bytes += end - start
	}
	l.n, l.size = t.n, max(len(b), headerLen)
	return l, nil
}

func (l *listValue) Size() int { return l.size }
func (l *listValue) Mem() int  { return l.bytes + len(l.ring)*listElemMem + 128 }

func (l *listValue) at(i int) []byte { return l.ring[(l.head+i)%len(l.ring)] }

func (l *listValue) grow() {
	if l.n < len(l.ring) {
		return
	}
	ring := make([][]byte, max(2*len(l.ring), 4))
	for i := 0; i < l.n; i++ {
		ring[i] = l.at(i)
	}
	l.ring, l.head = ring, 0
}

func (l *listValue) account(e []byte, sign int) {
	l.n += sign
	l.bytes += sign * len(e)
	l.size += sign * (4 + len(e))
}

func (l *listValue) pushFront(e []byte) {
	l.grow()
	l.head = (l.head - 1 + len(l.ring)) % len(l.ring)
	l.ring[l.head] = e
	l.account(e, 1)
}

func (l *listValue) pushBack(e []byte) {
	l.grow()
	l.ring[(l.head+l.n)%len(l.ring)] = e
	l.account(e, 1)
}

func (l *listValue) popFront() []byte {
	e := l.ring[l.head]
	l.ring[l.head] = nil
	l.head = (l.head + 1) % len(l.ring)
	l.account(e, -1)
	return e
}

func (l *listValue) popBack() []byte {
	i := (l.head + l.n - 1) % len(l.ring)
	e := l.ring[i]
	l.ring[i] = nil
	l.account(e, -1)
	return e
}

// AppendEncoded writes the value in the list encoding (PROCESSORS.md, "list").
func (l *listValue) AppendEncoded(dst []byte) []byte {
	dst = append(dst, FormatList)
	dst = binary.BigEndian.AppendUint32(dst, uint32(l.n))
	area := 0
	for i := 0; i < l.n; i++ {
		dst = binary.BigEndian.AppendUint32(dst, uint32(area))
		area += len(l.at(i))
	}
	for i := 0; i < l.n; i++ {
		dst = append(dst, l.at(i)...)
	}
	return dst
}

// Undo takes back the last Exec's changes.
func (l *listValue) Undo() {
	u := &l.undo
	for range u.pushed {
		if u.left {
			l.popFront()
		} else {
			l.popBack()
		}
	}
	for i := len(u.front) - 1; i >= 0; i-- {
		l.pushFront(u.front[i])
	}
	for _, e := range u.back {
		l.pushBack(e)
	}
	l.forget()
}

// forget clears the undo record.
func (l *listValue) forget() {
	u := &l.undo
	clear(u.front)
	clear(u.back)
	u.pushed, u.front, u.back = 0, u.front[:0], u.back[:0]
}

// Exec runs one call of the list processor (PROCESSORS.md, "list").
func (l *listValue) Exec(in Input, out *Output) error {
	l.forget()
	r, cmd, err := beginCall(in, out, "list sub-command")
	if err != nil {
		return err
	}
	switch cmd {
	case ListCmdPushLeft, ListCmdPushRight:
		return l.push(&r, out, cmd == ListCmdPushLeft)
	case ListCmdRange, ListCmdTrim:
		start, stop := r.i("start"), r.i("stop")
		if err := r.end(); err != nil {
			return err
		}
		from, to := listRange(l.n, start, stop)
		if cmd == ListCmdRange {
			return l.get(from, to, out)
		}
		return l.trim(from, to, out)
	case ListCmdLen:
		if err := r.end(); err != nil {
			return err
		}
		out.Result = appendU(out.Result, uint64(l.n))
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

// push pushes the elements to one end one after the other, then keeps the first (left) or
// last (right) cap elements: the newest survive.
func (l *listValue) push(r *reader, out *Output, left bool) error {
	capacity := r.u("cap")
	m := r.count("element", 1)
	elems := l.pushed[:0]
	for i := 0; i < m && r.err == nil; i++ {
		elems = append(elems, r.bytes("element"))
	}
	l.pushed = elems
	defer clear(l.pushed)
	if err := r.end(); err != nil {
		return err
	}
	if m == 0 {
		return badArgs("no element given")
	}
	total := uint64(l.n) + uint64(m)
	if capacity == 0 || capacity > total {
		capacity = total // cap 0: no cap
	}
	keep := int(capacity)
	if err := out.Charge(keep); err != nil {
		return err
	}
	newKept := min(m, keep)
	dropped := l.n - (keep - newKept) // old elements that go, from the far end
	size := l.size + 4*(keep-l.n)
	for i := 0; i < dropped; i++ {
		if left {
			size -= len(l.at(l.n - 1 - i))
		} else {
			size -= len(l.at(i))
		}
	}
	for _, e := range elems[m-newKept:] {
		size += len(e)
	}
	if out.maxValue > 0 && size > out.maxValue {
		return tooLarge("new value of %d bytes over the limit of %d", size, out.maxValue)
	}
	u := &l.undo
	for range dropped {
		if left {
			u.back = append(u.back, l.popBack())
		} else {
			u.front = append(u.front, l.popFront())
		}
	}
	if left {
		reverse(u.back) // popped from the tail: put them back in list order
	}
	for _, e := range elems[m-newKept:] {
		if left {
			l.pushFront(bytes.Clone(e))
		} else {
			l.pushBack(bytes.Clone(e))
		}
	}
	u.pushed, u.left = newKept, left
	out.Result = appendU(out.Result, uint64(keep))
	out.Action = Set
	return nil
}

func reverse(s [][]byte) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func (l *listValue) get(from, to int, out *Output) error {
	if err := out.Charge(to - from); err != nil {
		return err
	}
	out.Result = appendU(out.Result, uint64(to-from))
	for i := from; i < to; i++ {
		out.Result = appendBytes(out.Result, l.at(i))
		if out.resultFull() {
			return tooLarge("result over the limit of %d bytes", out.maxResult)
		}
	}
	return nil
}

func (l *listValue) trim(from, to int, out *Output) error {
	out.Result = appendU(out.Result, uint64(to-from))
	switch {
	case from == 0 && to == l.n:
		return nil // nothing to trim
	case from == to:
		out.Action = Delete // an empty list is no list, as in Redis
		return nil
	}
	if err := out.Charge(l.n - (to - from)); err != nil {
		return err
	}
	u := &l.undo
	for range l.n - to {
		u.back = append(u.back, l.popBack())
	}
	reverse(u.back)
	for range from {
		u.front = append(u.front, l.popFront())
	}
	out.Action = Set
	return nil
}
