package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
)

// TestExecHeaderRoundTrip: an exec's processor name travels in "proc", beside the key and the
// arguments (the value), and a reused Header keeps no name of an earlier frame.
func TestExecHeaderRoundTrip(t *testing.T) {
	in := Header{V: Version, Op: task.OpExec, ID: 7, Key: []byte("board:1"), Proc: []byte("zset")}
	args := []byte{'i', 0x40, 0x14, 0, 0, 0, 0, 0, 0, 5, 'a', 'l', 'i', 'c', 'e'}
	frame, err := AppendFrame(nil, &in, args)
	require.NoError(t, err)
	assert.Contains(t, string(frame), `"op":"exec"`)
	assert.Contains(t, string(frame), `"proc":"zset"`)

	var out Header
	got, err := Decode(frame[prefixLen:], &out)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	assert.Equal(t, args, got)

	_, err = Decode(rawFrame(`{"v":1,"op":"get","id":8,"key":"k"}`, nil), &out)
	require.NoError(t, err)
	assert.Empty(t, out.Proc, "nothing of the previous frame's proc is left")

	_, err = Decode(rawFrame(`{"v":1,"op":"exec","key":"k","proc":"z\u0073et"}`, nil), &out)
	require.NoError(t, err)
	assert.Equal(t, "zset", string(out.Proc), "the name is a JSON string: escapes are decoded")
}

func TestCheckExec(t *testing.T) {
	long := strings.Repeat("p", MaxProcName+1)
	tests := []struct {
		name string
		h    Header
		code task.Code
		msg  string
	}{
		{"ok", Header{Key: []byte("k"), Proc: []byte("zset")}, task.CodeOK, ""},
		{"longest name", Header{Key: []byte("k"), Proc: []byte(long[1:])}, task.CodeOK, ""},
		{"no key", Header{Proc: []byte("zset")}, task.CodeBadRequest, "needs a key"},
		{"no proc", Header{Key: []byte("k")}, task.CodeBadRequest, "processor name"},
		{"name too long", Header{Key: []byte("k"), Proc: []byte(long)}, task.CodeBadRequest, "processor name"},
		{"flags", Header{Key: []byte("k"), Proc: []byte("zset"), Flags: 1}, task.CodeBadRequest, "not defined for exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			h.V, h.Op = Version, task.OpExec
			code, msg := Check(&h)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, msg, tt.msg)
		})
	}
	h := Header{V: Version, Op: task.OpGet, Key: []byte("k"), Proc: []byte(long)}
	code, _ := Check(&h)
	assert.Equal(t, task.CodeOK, code, "a proc on another op is ignored, like any field it does not use")
	assert.True(t, ReplyHasValue(task.OpExec), "an exec's reply carries the processor's result")
	r, ok := RequestFor(task.OpExec)
	assert.True(t, ok)
	assert.True(t, r.Value, "the arguments are the value")
}
