package wire

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
)

// referenceHeader decodes a header with encoding/json: what any JSON decoder would make of it.
// ok is false where the header is not one the protocol accepts; then read says whether it is a
// JSON object at all, and h holds its id and op if they are well formed (the reply carries them).
func referenceHeader(data []byte) (h Header, ok, read bool) {
	var fields map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(data, &fields); err != nil || fields == nil {
		return h, false, false
	}
	dec := func(name string, v any) bool {
		raw, ok := fields[name]
		return !ok || stdjson.Unmarshal(raw, v) == nil && (isString(raw) || !bytes.ContainsAny(raw, ".eE"))
	}
	var v int32
	var op, key, msg, proc string
	var flags uint32
	var code uint16
	idOK, opOK := dec("id", &h.ID), dec("op", &op)
	if !idOK {
		h.ID = 0
	}
	if !opOK {
		op = ""
	}
	if h.Op = opByName[op]; h.Op == task.OpNone {
		h.OpName = op
	}
	raw, hasV := fields["v"]
	ok = idOK && opOK && hasV && string(raw) != "null" && dec("v", &v) && dec("key", &key) && dec("ttl", &h.TTL) &&
		dec("ver", &h.Ver) && dec("delta", &h.Delta) && dec("flags", &flags) && dec("seq", &h.Seq) &&
		dec("code", &code) && dec("msg", &msg) && dec("proc", &proc) && utf8.ValidString(key)
	if !ok {
		return Header{ID: h.ID, Op: h.Op, OpName: h.OpName}, false, true
	}
	h.V, h.Flags, h.Code, h.Msg = int(v), flags, task.Code(code), msg
	if key != "" {
		h.Key = []byte(key)
	}
	if proc != "" {
		h.Proc = []byte(proc)
	}
	return h, true, true
}

func isString(raw stdjson.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

func orNull(raw stdjson.RawMessage) stdjson.RawMessage {
	if raw == nil {
		return stdjson.RawMessage("null")
	}
	return raw
}

// FuzzParseHeader: the parser agrees with encoding/json on every header: same fields where both
// accept it, an error where the protocol does not (a float or out-of-range integer, a wrong
// type, no "v", invalid JSON), and for a JSON object it refuses, ErrBadField with the id and op
// encoding/json reads. Differences allowed: inputs that are not UTF-8, nesting past maxDepth.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"op":"get","id":3,"key":"user:1"}`,
		`{"v":1,"op":"exec","id":4,"key":"board:1","proc":"z\u0073et"}`,
		`{"v":1,"op":"set","id":18446744073709551615,"key":"a\"b\\c\u00e9\ud83d\ude00","ttl":-5,"flags":4294967295}`,
		`{"v":1,"future":{"a":[1,2.5e3,{"b":null}],"c":true},"op":"teleport","msg":"x\ny"}`,
		` { "v" : 1 , "code" : 65535 } `,
		`{"v":1.0}`, `{"v":1e2}`, `{"v":01}`, `{"v":1,"flags":-1}`, `{"v":1,"id":"7"}`,
		`{"v":1,"key":"\ud800"}`, `{"v":1,"op":null,"id":null}`, `{"v":1}x`, `{"v":1,}`, `[1]`, `{}`, `{"v":1,"v":2}`,
		`{"op":"get","id":7}`, `{"v":null,"id":7}`, `{"v":"1","op":"set","id":8}`, `{"v":1,"id":9,"op":"set","ttl":"x"}`,
		`{"v":1,"id":-1,"op":"get"}`, `{"v":1,"id":10,"op":7}`, `{"v":1,"id":11,"key":{"a":[1]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Header
		err := parseHeader(data, &got)
		want, ok, read := referenceHeader(data)
		if !utf8.Valid(data) || strings.Count(string(data), "[")+strings.Count(string(data), "{") > maxDepth {
			return // encoding/json replaces invalid UTF-8; our nesting limit is lower: both fine
		}
		if !ok {
			if err == nil {
				t.Fatalf("%q: accepted, but encoding/json says no", data)
			}
			if errors.Is(err, ErrBadField) != read {
				t.Fatalf("%q: %v, but encoding/json says a JSON object: %v", data, err, read)
			}
			if read && (got.ID != want.ID || got.Op != want.Op || got.OpName != want.OpName) {
				t.Fatalf("%q: id %d op %v %q, encoding/json reads id %d op %v %q", data, got.ID, got.Op, got.OpName, want.ID, want.Op, want.OpName)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: refused (%v), but encoding/json accepts it", data, err)
		}
		if len(got.Key) == 0 {
			got.Key = nil
		}
		if len(got.Proc) == 0 {
			got.Proc = nil
		}
		assert.Equal(t, want, got, "%q", data)
	})
}

func TestParseHeaderAllocatesNothing(t *testing.T) {
	data := []byte(`{"v":1,"op":"get","id":12345,"key":"user:1234","ttl":500,"flags":0,"future":[1,{"x":"y"}]}`)
	var h Header
	h.Key = make([]byte, 0, 64)
	require.NoError(t, parseHeader(data, &h))
	allocs := testing.AllocsPerRun(1000, func() {
		if err := parseHeader(data, &h); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, "user:1234", string(h.Key))
	assert.Equal(t, task.OpGet, h.Op)
}

// TestDecodeKeepsTheIDOfAReadableHeader: a header that is a JSON object but not a valid header
// is ErrBadField, and Decode keeps its id and op (the error's reply carries them) and nothing
// else; one that is not a JSON object at all is ErrBadHeader alone, with nothing kept.
func TestDecodeKeepsTheIDOfAReadableHeader(t *testing.T) {
	for _, tc := range []struct {
		hdr    string
		read   bool
		id     uint64
		op     task.Op
		opName string
	}{
		{`{"op":"get","id":7,"key":"k"}`, true, 7, task.OpGet, ""},                               // no v
		{`{"v":null,"op":"set","id":8}`, true, 8, task.OpSet, ""},                                // v null: absent
		{`{"v":"1","op":"set","id":9}`, true, 9, task.OpSet, ""},                                 // v a string
		{`{"v":1,"op":"set","id":10,"ttl":1.5,"key":"k"}`, true, 10, task.OpSet, ""},             // a fraction
		{"{\"v\":1,\"op\":\"set\",\"id\":11,\"key\":\"bad\xff\xfe\"}", true, 11, task.OpSet, ""}, // not UTF-8
		{`{"v":1,"op":"frob","id":12,"flags":-1}`, true, 12, task.OpNone, "frob"},                // out of range
		{`{"v":1,"op":7,"id":13,"key":[1]}`, true, 13, task.OpNone, ""},                          // op unreadable
		{`{"v":1,"op":"get","id":-1,"key":{}}`, true, 0, task.OpGet, ""},                         // id unreadable
		{`{"v":1,"op":"get","id":14`, false, 0, task.OpNone, ""},                                 // not JSON
		{"{\"v\":1,\"op\":\"get\",\"id\":15}\x00", false, 0, task.OpNone, ""},                    // NUL after it
		{`["v",1]`, false, 0, task.OpNone, ""},
	} {
		frame, err := AppendFrame(nil, &Header{}, nil)
		require.NoError(t, err)
		frame = append(frame[:4], 0, byte(len(tc.hdr)))
		frame = append(frame, tc.hdr...)
		h := Header{Key: []byte("earlier"), Msg: "earlier", TTL: 5}
		_, err = Decode(frame[4:], &h)
		require.ErrorIs(t, err, ErrBadHeader, tc.hdr)
		assert.Equal(t, tc.read, errors.Is(err, ErrBadField), "%s: %v", tc.hdr, err)
		assert.Equal(t, Header{ID: tc.id, Op: tc.op, OpName: tc.opName, Key: h.Key[:0]}, h, tc.hdr)
	}
}
