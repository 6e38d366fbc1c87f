package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
)

// TestHelloFrames: hellos are padded to the size asked (at least MinHello, as the server
// requires), carry what they were given, and read back as a hello.
func TestHelloFrames(t *testing.T) {
	for _, tc := range []struct {
		size int
		r    HelloRequest
	}{
		{MinHello, HelloRequest{Name: "idle", HeartbeatMs: 30000}},
		{1000, HelloRequest{Name: "idle", HeartbeatMs: 30000}},
		{1000, HelloRequest{Name: "idle", Token: `s3"cret`, HeartbeatMs: 1000, Resume: strings.Repeat("ab", 16), LastSeq: 7}},
		{4000, HelloRequest{Name: "idle"}},
		{10, HelloRequest{Name: "idle", HeartbeatMs: 5}}, // already longer: not padded
	} {
		h := Header{V: Version, Op: task.OpHello, ID: 7}
		frame, err := AppendHello([]byte("junk"), &h, tc.r, tc.size)
		require.NoError(t, err)
		require.Equal(t, "junk", string(frame[:4]), "appended, not overwritten")
		frame = frame[4:]
		assert.GreaterOrEqual(t, len(frame), tc.size)
		assert.Less(t, len(frame), max(tc.size, 80)+padOverhead)
		got, value := readFrame(t, frame)
		assert.Equal(t, task.OpHello, got.Op)
		assert.Equal(t, uint64(7), got.ID)
		var r HelloRequest
		require.NoError(t, json.Unmarshal(value, &r))
		assert.Equal(t, tc.size > 80, r.Pad != "", "padded only when short")
		r.Pad = ""
		assert.Equal(t, tc.r, r)
	}
}

// TestHelloValueSizes: a value is padded to the size exactly when the pad field fits, and to
// just past it when even one pad character overshoots.
func TestHelloValueSizes(t *testing.T) {
	r := HelloRequest{Name: "n"}
	bare := len(HelloValue(r, 0))
	for size := bare - 1; size <= bare+3*padOverhead; size++ {
		v := HelloValue(r, size)
		switch need := size - bare; {
		case need <= 0:
			assert.Len(t, v, bare, "size %d", size)
		case need > padOverhead:
			assert.Len(t, v, size, "size %d", size)
		default:
			assert.Len(t, v, bare+padOverhead+1, "size %d", size)
		}
	}
}
