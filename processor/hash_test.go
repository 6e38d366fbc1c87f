package processor

import (
	"bytes"
	"errors"
	"testing"
)

func fields(kv ...string) []Field {
	var fs []Field
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, Field{kv[i], []byte(kv[i+1])})
	}
	return fs
}

// hashOf returns a key holding a hash of the given field/value pairs.
func hashOf(tb testing.TB, kv ...string) *key {
	tb.Helper()
	return with(encoded(tb)(EncodeHash(nil, fields(kv...))))
}

func TestHash(t *testing.T) {
	u := func(n uint64) []byte { return appendU(nil, n) }
	tests := []struct {
		name   string
		key    *key
		args   []byte
		result []byte
		action Action
		after  []Field // the hash afterwards, when the call succeeds
		err    error
	}{
		{"set on a missing key creates it", &key{}, HashSetArgs(fields("name", "ann")...), u(1), Set, fields("name", "ann"), nil},
		{"set on an empty value", with([]byte{}), HashSetArgs(fields("a", "1")...), u(1), Set, fields("a", "1"), nil},
		{"set many, unsorted", hashOf(t, "b", "2"), HashSetArgs(fields("c", "3", "a", "1", "b", "two")...), u(2), Set, fields("a", "1", "b", "two", "c", "3"), nil},
		{"set a field twice: the last wins, counted once", &key{}, HashSetArgs(fields("a", "1", "a", "2")...), u(1), Set, fields("a", "2"), nil},
		{"set to the same value changes nothing", hashOf(t, "a", "1"), HashSetArgs(fields("a", "1")...), u(0), Unchanged, fields("a", "1"), nil},
		{"set an empty field name and value", &key{}, HashSetArgs(fields("", "")...), u(1), Set, fields("", ""), nil},
		{"set with no fields", &key{}, HashSetArgs(), nil, Unchanged, nil, ErrBadArgs},
		{"get present and missing", hashOf(t, "a", "1", "b", ""), HashGetArgs("b", "x", "a"),
			[]byte{3, 1, 0, 0, 1, 1, '1'}, Unchanged, fields("a", "1", "b", ""), nil},
		{"get nothing", hashOf(t, "a", "1"), HashGetArgs(), u(0), Unchanged, fields("a", "1"), nil},
		{"get on a missing key", &key{}, HashGetArgs("a"), []byte{1, 0}, Unchanged, nil, nil},
		{"del some", hashOf(t, "a", "1", "b", "2", "c", "3"), HashDelArgs("c", "a", "zz", "a"), u(2), Set, fields("b", "2"), nil},
		{"del missing changes nothing", hashOf(t, "a", "1"), HashDelArgs("b"), u(0), Unchanged, fields("a", "1"), nil},
		{"del the last field deletes the key", hashOf(t, "a", "1"), HashDelArgs("a"), u(1), Delete, nil, nil},
		{"del on a missing key", &key{}, HashDelArgs("a"), u(0), Unchanged, nil, nil},
		{"getall", hashOf(t, "b", "2", "a", "1"), HashGetAllArgs(), []byte{2, 1, 'a', 1, '1', 1, 'b', 1, '2'}, Unchanged, fields("a", "1", "b", "2"), nil},
		{"getall on a missing key", &key{}, HashGetAllArgs(), u(0), Unchanged, nil, nil},
		{"len", hashOf(t, "b", "2", "a", "1"), HashLenArgs(), u(2), Unchanged, fields("a", "1", "b", "2"), nil},
		{"len on an empty value", with([]byte{}), HashLenArgs(), u(0), Unchanged, nil, nil},
		{"no args", &key{}, nil, nil, Unchanged, nil, ErrBadArgs},
		{"unknown sub-command", &key{}, []byte{'?'}, nil, Unchanged, nil, ErrBadArgs},
		{"trailing bytes", &key{}, append(HashLenArgs(), 0), nil, Unchanged, nil, ErrBadArgs},
		{"truncated field", &key{}, []byte{HashCmdGet, 1, 5, 'a'}, nil, Unchanged, nil, ErrBadArgs},
		{"set missing its value", &key{}, []byte{HashCmdSet, 1, 1, 'a'}, nil, Unchanged, nil, ErrBadArgs},
		{"count not in its shortest form", &key{}, []byte{HashCmdGet, 0x81, 0x00, 1, 'a'}, nil, Unchanged, nil, ErrBadArgs},
		{"huge count", &key{}, []byte{HashCmdGet, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 'a'}, nil, Unchanged, nil, ErrBadArgs},
		{"a text value", with([]byte("hello")), HashLenArgs(), nil, Unchanged, nil, ErrWrongType},
		{"a list value", with(encoded(t)(EncodeList(nil, [][]byte{[]byte("x")}))), HashLenArgs(), nil, Unchanged, nil, ErrWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bytes.Clone(tt.key.value)
			res, act, err := tt.key.do(t, Hash, tt.args)
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
			if tt.key.exists {
				got, err := DecodeHash(tt.key.value)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.after) || !equalFields(got, tt.after) {
					t.Fatalf("hash holds %q, want %q", got, tt.after)
				}
			} else if len(tt.after) > 0 {
				t.Fatalf("key gone, want %q", tt.after)
			}
		})
	}
}

func equalFields(a, b []Field) bool {
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestHashGolden pins the encoding PROCESSORS.md shows byte by byte.
func TestHashGolden(t *testing.T) {
	want := []byte{
		0x01,                   // format: hash v1
		0x00, 0x00, 0x00, 0x02, // n = 2
		0x00, 0x00, 0x00, 0x00, // entry 0 at 0
		0x00, 0x00, 0x00, 0x06, // entry 1 at 6
		0x05, 'c', 'o', 'i', 'n', 's', // entry 0: field "coins", value "" (6 bytes)
		0x04, 'n', 'a', 'm', 'e', 'a', 'n', 'n', // entry 1: field "name", value "ann"
	}
	got := encoded(t)(EncodeHash(nil, fields("name", "ann", "coins", "")))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n%x, want\n%x", got, want)
	}
}
