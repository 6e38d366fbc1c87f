package processor

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func elems(s string) [][]byte {
	if s == "" {
		return nil
	}
	var es [][]byte
	for _, e := range strings.Split(s, " ") {
		es = append(es, []byte(e))
	}
	return es
}

// listOf returns a key holding the space-separated elements of s.
func listOf(tb testing.TB, s string) *key {
	tb.Helper()
	return with(encoded(tb)(EncodeList(nil, elems(s))))
}

func rangeResult(s string) []byte {
	es := elems(s)
	b := appendU(nil, uint64(len(es)))
	for _, e := range es {
		b = appendBytes(b, e)
	}
	return b
}

func TestList(t *testing.T) {
	u := func(n uint64) []byte { return appendU(nil, n) }
	tests := []struct {
		name   string
		key    *key
		args   []byte
		result []byte
		action Action
		after  string // the list afterwards, space-separated
		err    error
	}{
		{"push left on a missing key", &key{}, ListPushArgs(true, 0, elems("a b c")...), u(3), Set, "c b a", nil},
		{"push right on a missing key", &key{}, ListPushArgs(false, 0, elems("a b c")...), u(3), Set, "a b c", nil},
		{"push on an empty value", with([]byte{}), ListPushArgs(false, 5, elems("a")...), u(1), Set, "a", nil},
		{"push left, cap drops the oldest (tail)", listOf(t, "c b a"), ListPushArgs(true, 3, elems("d")...), u(3), Set, "d c b", nil},
		{"push right, cap drops the oldest (head)", listOf(t, "a b c"), ListPushArgs(false, 3, elems("d")...), u(3), Set, "b c d", nil},
		{"cap 1 keeps the newest", listOf(t, "a b"), ListPushArgs(false, 1, elems("c d")...), u(1), Set, "d", nil},
		{"cap 1, left", listOf(t, "a b"), ListPushArgs(true, 1, elems("c d")...), u(1), Set, "d", nil},
		{"cap 0 is no cap", listOf(t, "a b"), ListPushArgs(false, 0, elems("c")...), u(3), Set, "a b c", nil},
		{"cap above the length", listOf(t, "a"), ListPushArgs(true, 1000, elems("b")...), u(2), Set, "b a", nil},
		{"push more than the cap at once", &key{}, ListPushArgs(false, 2, elems("a b c d")...), u(2), Set, "c d", nil},
		{"push an empty element", &key{}, ListPushArgs(false, 0, []byte{}), u(1), Set, "", nil},
		{"push nothing", listOf(t, "a"), ListPushArgs(false, 0), nil, Unchanged, "a", ErrBadArgs},
		{"range all", listOf(t, "a b c"), ListRangeArgs(0, -1), rangeResult("a b c"), Unchanged, "a b c", nil},
		{"range negative", listOf(t, "a b c d"), ListRangeArgs(-3, -2), rangeResult("b c"), Unchanged, "a b c d", nil},
		{"range clipped", listOf(t, "a b c"), ListRangeArgs(-100, 100), rangeResult("a b c"), Unchanged, "a b c", nil},
		{"range start after stop", listOf(t, "a b c"), ListRangeArgs(2, 1), u(0), Unchanged, "a b c", nil},
		{"range past the end", listOf(t, "a b c"), ListRangeArgs(3, 5), u(0), Unchanged, "a b c", nil},
		{"range of extreme indices", listOf(t, "a b c"), ListRangeArgs(math.MinInt64, math.MaxInt64), rangeResult("a b c"), Unchanged, "a b c", nil},
		{"range on a missing key", &key{}, ListRangeArgs(0, -1), u(0), Unchanged, "", nil},
		{"trim", listOf(t, "a b c d"), ListTrimArgs(1, -2), u(2), Set, "b c", nil},
		{"trim nothing away", listOf(t, "a b"), ListTrimArgs(0, -1), u(2), Unchanged, "a b", nil},
		{"trim everything deletes the key", listOf(t, "a b"), ListTrimArgs(5, 10), u(0), Delete, "", nil},
		{"trim a missing key", &key{}, ListTrimArgs(0, 0), u(0), Unchanged, "", nil},
		{"len", listOf(t, "a b c"), ListLenArgs(), u(3), Unchanged, "a b c", nil},
		{"len of a missing key", &key{}, ListLenArgs(), u(0), Unchanged, "", nil},
		{"unknown sub-command", &key{}, []byte{'x'}, nil, Unchanged, "", ErrBadArgs},
		{"range missing stop", &key{}, []byte{ListCmdRange, 0}, nil, Unchanged, "", ErrBadArgs},
		{"huge element count", &key{}, []byte{ListCmdPushLeft, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}, nil, Unchanged, "", ErrBadArgs},
		{"a hash value", hashOf(t, "a", "1"), ListLenArgs(), nil, Unchanged, "", ErrWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bytes.Clone(tt.key.value)
			res, act, err := tt.key.do(t, List, tt.args)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(res, tt.result) || act != tt.action {
				t.Fatalf("result %x, %v; want %x, %v", res, act, tt.result, tt.action)
			}
			if act == Unchanged && !bytes.Equal(tt.key.value, before) {
				t.Fatal("unchanged, but the value changed")
			}
			if !tt.key.exists {
				if tt.after != "" {
					t.Fatalf("key gone, want %q", tt.after)
				}
				return
			}
			got, err := DecodeList(tt.key.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(bytes.Join(got, []byte(" "))) != tt.after {
				t.Fatalf("list holds %q, want %q", got, tt.after)
			}
		})
	}
}

func TestListGolden(t *testing.T) {
	want := []byte{
		0x02,                   // format: list v1
		0x00, 0x00, 0x00, 0x03, // n = 3
		0x00, 0x00, 0x00, 0x00, // element 0 at 0
		0x00, 0x00, 0x00, 0x02, // element 1 at 2
		0x00, 0x00, 0x00, 0x02, // element 2 at 2 (element 1 is empty)
		'h', 'i', 'y', 'o', // "hi", "", "yo"
	}
	got := encoded(t)(EncodeList(nil, [][]byte{[]byte("hi"), {}, []byte("yo")}))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n%x, want\n%x", got, want)
	}
}
