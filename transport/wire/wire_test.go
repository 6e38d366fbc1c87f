package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
)

func TestFrameRoundTrip(t *testing.T) {
	in := Header{V: Version, Op: task.OpCAS, ID: 42, Key: []byte("user:1 \"quoted\" ü\n"), TTL: 5000,
		Ver: 7, Delta: -3, Flags: 1, Seq: 9, Code: task.CodeVersionMismatch, Msg: "lost the race"}
	value := []byte{0, 1, 2, 0xff, '"', '\\'}
	frame, err := AppendFrame(nil, &in, value)
	require.NoError(t, err)

	out, got := readFrame(t, frame)
	assert.Equal(t, in, out)
	assert.Equal(t, value, got)
}

// readFrame splits and decodes one whole frame.
func readFrame(tb testing.TB, frame []byte) (Header, []byte) {
	tb.Helper()
	var sp Splitter
	sp.Write(frame)
	body, err := sp.Next()
	require.NoError(tb, err)
	var h Header
	value, err := Decode(body, &h)
	require.NoError(tb, err)
	return h, value
}

func TestDecodeIgnoresUnknownFieldsAndOps(t *testing.T) {
	var h Header
	_, err := Decode(rawFrame(`{"v":1,"op":"get","future":{"a":[1,2]},"id":3,"key":"k"}`, nil), &h)
	require.NoError(t, err)
	assert.Equal(t, task.OpGet, h.Op)
	assert.Equal(t, uint64(3), h.ID)

	_, err = Decode(rawFrame(`{"v":1,"op":"teleport","id":4}`, nil), &h)
	require.NoError(t, err, "an unknown op is the receiver's to answer, not a framing error")
	assert.Equal(t, task.OpNone, h.Op)
	assert.Equal(t, "teleport", h.OpName, "the op as sent, so the reply can carry it")
	assert.Equal(t, uint64(4), h.ID)
	assert.Empty(t, h.Key, "nothing of the previous frame is left")

	frame, err := AppendFrame(nil, &Header{V: 1, OpName: "teleport", ID: 4, Code: task.CodeUnknownOp}, nil)
	require.NoError(t, err)
	assert.Contains(t, string(frame), `"op":"teleport"`, "a reply to an unknown op carries the op sent")
}

// TestDecodeFailureLeavesNothingOfTheLastFrame: a header that cannot be read leaves h empty (id
// 0, no op), never the fields of the frame decoded before it, whoever sent that one.
func TestDecodeFailureLeavesNothingOfTheLastFrame(t *testing.T) {
	for name, body := range map[string][]byte{
		"hlen past the frame": {0x00, 0x40, '{', '}'},
		"header over 8 KiB":   rawFrame(`{"v":1,"pad":"`+string(bytes.Repeat([]byte("x"), MaxHeader))+`"}`, nil),
		"short body":          {0x00},
		"not json":            rawFrame(`{"v":1,"op":`, nil),
	} {
		t.Run(name, func(t *testing.T) {
			var h Header
			_, err := Decode(rawFrame(`{"v":1,"op":"delete","id":777777,"key":"theirs","flags":1}`, nil), &h)
			require.NoError(t, err)
			_, err = Decode(body, &h)
			require.Error(t, err)
			assert.Zero(t, h.ID)
			assert.Equal(t, task.OpNone, h.Op)
			assert.Empty(t, h.OpName)
			assert.Empty(t, h.Key)
			assert.Zero(t, h.Flags)
		})
	}
}

// TestReplyWithoutOpOmitsIt: a reply to a frame whose op could not be read says no op at all,
// rather than "none".
func TestReplyWithoutOpOmitsIt(t *testing.T) {
	frame, err := AppendFrame(nil, &Header{V: 1, Code: task.CodeBadRequest, Msg: "bad"}, nil)
	require.NoError(t, err)
	assert.NotContains(t, string(frame), `"op"`)
}

func TestDecodeRejectsBadHeaders(t *testing.T) {
	for name, hdr := range map[string]string{
		"not json":    `{"v":1,"op":`,
		"not object":  `[1,2]`,
		"no version":  `{"op":"get"}`,
		"bad utf8":    "{\"v\":1,\"key\":\"\xff\xfe\"}",
		"wrong types": `{"v":"one"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var h Header
			_, err := Decode(rawFrame(hdr, nil), &h)
			assert.ErrorIs(t, err, ErrBadHeader)
		})
	}
	var h Header
	_, err := Decode([]byte{0xff, 0xff, '{', '}'}, &h)
	assert.ErrorIs(t, err, ErrBadFrame, "header length beyond the frame")
}

func TestSplitterByteAtATime(t *testing.T) {
	var stream []byte
	for i := range 5 {
		f, err := AppendFrame(nil, &Header{V: 1, Op: task.OpEcho, ID: uint64(i)}, bytes.Repeat([]byte{byte(i)}, i*100))
		require.NoError(t, err)
		stream = append(stream, f...)
	}
	var sp Splitter
	var ids []uint64
	for _, b := range stream {
		sp.Write([]byte{b})
		for {
			body, err := sp.Next()
			require.NoError(t, err)
			if body == nil {
				break
			}
			var h Header
			v, err := Decode(body, &h)
			require.NoError(t, err)
			assert.Len(t, v, int(h.ID)*100)
			ids = append(ids, h.ID)
		}
	}
	assert.Equal(t, []uint64{0, 1, 2, 3, 4}, ids)
	assert.Zero(t, sp.Buffered())
}

func TestSplitterRejectsHostilePrefixWithoutAllocating(t *testing.T) {
	var sp Splitter
	sp.Write([]byte{0xff, 0xff, 0xff, 0xff})
	_, err := sp.Next()
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	_, err = sp.Next()
	assert.ErrorIs(t, err, ErrFrameTooLarge, "a failed stream stays failed")

	// A prefix just under the limit claims 4 MiB; the buffer holds only what arrived.
	var sp2 Splitter
	claim := binary.BigEndian.AppendUint32(nil, MaxFrame)
	sp2.Write(claim)
	body, err := sp2.Next()
	assert.NoError(t, err)
	assert.Nil(t, body)
	assert.Less(t, cap(sp2.buf), 1024)

	var sp3 Splitter
	sp3.Write([]byte{0, 0, 0, 1, 0})
	_, err = sp3.Next()
	assert.ErrorIs(t, err, ErrBadFrame)
}

func TestAppendFrameLimits(t *testing.T) {
	_, err := AppendFrame(nil, &Header{V: 1}, make([]byte, MaxValue+1))
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	_, err = AppendFrame(nil, &Header{V: 1, Key: bytes.Repeat([]byte("k"), MaxHeader)}, nil)
	assert.ErrorIs(t, err, ErrFrameTooLarge)
}

func TestEncodeDecodeAllocateLittle(t *testing.T) {
	h := Header{V: 1, Op: task.OpGet, ID: 1, Key: []byte("user:1234")}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		buf, _ = AppendFrame(buf[:0], &h, []byte("value"))
	})
	assert.Zero(t, allocs, "encoding a frame allocates")

	var out Header
	out.Key = make([]byte, 0, 64)
	body := buf[prefixLen:]
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := Decode(body, &out); err != nil {
			t.Fatal(err)
		}
	})
	// jsoniter's ReadObject allocates each field name (3 here) and ReadString the key: a known
	// cost of about 20 ns each, bounded by the number of fields.
	assert.LessOrEqual(t, allocs, 4.0)
}

func rawFrame(hdr string, value []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(hdr)))
	return append(append(b, hdr...), value...)
}

func FuzzDecode(f *testing.F) {
	f.Add(rawFrame(`{"v":1,"op":"get","id":1,"key":"k"}`, []byte("v")))
	f.Add(rawFrame(`{"v":1,"op":"set","ttl":-1,"ver":18446744073709551615}`, nil))
	f.Add(rawFrame(`{"v":1,"op":"exec","id":2,"key":"b","proc":"zset"}`, []byte{'n'}))
	f.Add([]byte{0, 200, '{'})
	f.Fuzz(func(t *testing.T, body []byte) {
		var h Header
		v, err := Decode(body, &h)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same thing.
		frame, err := AppendFrame(nil, &h, v)
		if err != nil {
			return
		}
		var h2 Header
		v2, err := Decode(frame[prefixLen:], &h2)
		require.NoError(t, err)
		if len(h.Key) == 0 {
			h.Key, h2.Key = nil, nil
		}
		if len(h2.Key) == 0 {
			h2.Key = nil
		}
		assert.Equal(t, h, h2)
		assert.Equal(t, v, v2)
	})
}

func FuzzSplitter(f *testing.F) {
	good, _ := AppendFrame(nil, &Header{V: 1, Op: task.OpPing, ID: 1}, []byte("x"))
	f.Add(good, uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Add([]byte{0, 0, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var sp Splitter
		step := int(chunk%64) + 1
		for len(stream) > 0 {
			n := min(step, len(stream))
			sp.Write(stream[:n])
			stream = stream[n:]
			for {
				body, err := sp.Next()
				if err != nil || body == nil {
					break
				}
				var h Header
				Decode(body, &h) // must not panic
			}
		}
		if cap(sp.buf) > 4*len(stream)+MaxFrameBytes {
			t.Fatalf("splitter buffer %d grew beyond what arrived", cap(sp.buf))
		}
	})
}

func TestMGetEncodingRoundTrip(t *testing.T) {
	keys := []string{"a", "user:1", "ü"}
	got, err := SplitKeys(AppendKeys(nil, keys), 250)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "user:1", string(got[1]))

	_, err = SplitKeys([]byte{0, 5, 'a'}, 250)
	assert.ErrorIs(t, err, ErrBadFrame)
	_, err = SplitKeys(AppendKeys(nil, []string{"toolong"}), 3)
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	_, err = SplitKeys(AppendKeys(nil, []string{"a", ""}), 250) // #23 item 9: code 6, as for every op
	assert.ErrorIs(t, err, ErrBadFrame)
	assert.NotErrorIs(t, err, ErrFrameTooLarge)

	var reply []byte
	reply = AppendMGetResult(reply, true, 7, []byte("v"))
	reply = AppendMGetResult(reply, false, 0, nil)
	res, err := SplitMGetResults(reply, 2)
	require.NoError(t, err)
	assert.Equal(t, MGetResult{Found: true, Version: 7, Value: []byte("v")}, res[0])
	assert.False(t, res[1].Found)
	_, err = SplitMGetResults(reply[:len(reply)-1], 2)
	assert.ErrorIs(t, err, ErrBadFrame)
}

func FuzzSplitKeys(f *testing.F) {
	f.Add(AppendKeys(nil, []string{"a", "bb"}))
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := SplitKeys(b, 250)
		if err != nil {
			return
		}
		ks := make([]string, len(keys))
		for i, k := range keys {
			ks[i] = string(k)
		}
		// bytes.Equal, not assert.Equal: an empty input re-encodes to nil, the same keys.
		if again := AppendKeys(nil, ks); !bytes.Equal(b, again) {
			t.Fatalf("keys %q re-encode to %x, not %x", ks, again, b)
		}
	})
}
