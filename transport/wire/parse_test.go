package wire

import (
	"bytes"
	stdjson "encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
)

// referenceHeader decodes a header with encoding/json: what any JSON decoder would make of it.
// ok is false where the header is not one the protocol accepts.
func referenceHeader(data []byte) (Header, bool) {
	var h Header
	var fields map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(data, &fields); err != nil || fields == nil {
		return h, false
	}
	if _, ok := fields["v"]; !ok {
		return h, false
	}
	dec := func(name string, v any) bool {
		raw, ok := fields[name]
		return !ok || stdjson.Unmarshal(raw, v) == nil && (isString(raw) || !bytes.ContainsAny(raw, ".eE"))
	}
	var v int32
	var op, key, msg, proc string
	var flags uint32
	var code uint16
	ok := dec("v", &v) && dec("op", &op) && dec("id", &h.ID) && dec("key", &key) && dec("ttl", &h.TTL) &&
		dec("ver", &h.Ver) && dec("delta", &h.Delta) && dec("flags", &flags) && dec("seq", &h.Seq) &&
		dec("code", &code) && dec("msg", &msg) && dec("proc", &proc)
	if !ok || !utf8.ValidString(key) {
		return h, false
	}
	h.V, h.Flags, h.Code, h.Msg = int(v), flags, task.Code(code), msg
	if key != "" {
		h.Key = []byte(key)
	}
	if proc != "" {
		h.Proc = []byte(proc)
	}
	if h.Op = opByName[op]; h.Op == task.OpNone {
		h.OpName = op
	}
	return h, true
}

func isString(raw stdjson.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

// FuzzParseHeader: the parser agrees with encoding/json on every header: same fields where both
// accept it, an error where the protocol does not (a float or out-of-range integer, a wrong
// type, invalid JSON). Differences allowed: inputs that are not UTF-8, nesting past maxDepth.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"op":"get","id":3,"key":"user:1"}`,
		`{"v":1,"op":"exec","id":4,"key":"board:1","proc":"z\u0073et"}`,
		`{"v":1,"op":"set","id":18446744073709551615,"key":"a\"b\\c\u00e9\ud83d\ude00","ttl":-5,"flags":4294967295}`,
		`{"v":1,"future":{"a":[1,2.5e3,{"b":null}],"c":true},"op":"teleport","msg":"x\ny"}`,
		` { "v" : 1 , "code" : 65535 } `,
		`{"v":1.0}`, `{"v":1e2}`, `{"v":01}`, `{"v":1,"flags":-1}`, `{"v":1,"id":"7"}`,
		`{"v":1,"key":"\ud800"}`, `{"v":1,"op":null,"id":null}`, `{"v":1}x`, `{"v":1,}`, `[1]`, `{}`, `{"v":1,"v":2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Header
		err := parseHeader(data, &got)
		want, ok := referenceHeader(data)
		if !utf8.Valid(data) || strings.Count(string(data), "[")+strings.Count(string(data), "{") > maxDepth {
			return // encoding/json replaces invalid UTF-8; our nesting limit is lower: both fine
		}
		if !ok {
			if err == nil {
				t.Fatalf("%q: accepted, but encoding/json says no", data)
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
