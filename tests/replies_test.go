package tests

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Every request gets exactly one reply, with the request's id (PROTOCOL.md): these tests hold
// the server to it where the request is malformed.

// readableButBad are headers that are JSON objects but not valid headers: each must be answered
// with code 6 and the request's id and op.
var readableButBad = []struct {
	name, hdr string
	id        uint64
	op        task.Op
}{
	{"no v", `{"op":"get","id":41,"key":"k"}`, 41, task.OpGet},
	{"v null", `{"v":null,"op":"get","id":42,"key":"k"}`, 42, task.OpGet},
	{"v a string", `{"v":"1","op":"ping","id":43}`, 43, task.OpPing},
	{"ttl a fraction", `{"v":1,"op":"set","id":44,"key":"k","ttl":1.5}`, 44, task.OpSet},
	{"flags negative", `{"v":1,"op":"subscribe","id":45,"key":"k","flags":-1}`, 45, task.OpSubscribe},
	{"key a number", `{"v":1,"op":"get","id":46,"key":7}`, 46, task.OpGet},
	{"key not UTF-8", "{\"v\":1,\"op\":\"set\",\"id\":47,\"key\":\"bad\xff\xfe\"}", 47, task.OpSet},
}

// TestReadableHeadersAreAnsweredWithTheirID: a header that can be read but is not valid (no v,
// a field of the wrong type or range, a key that is not UTF-8) is answered with code 6, the
// request's id and its op, on a session and before the hello alike (there it is a refused
// request, like any other but hello, not a reason to close the conversation). Only a header
// that is not a JSON object gets id 0 (TestFrameErrorsCarryNoOneElsesID).
func TestReadableHeadersAreAnsweredWithTheirID(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	raw := dialRawConn(t, d.Addr().String())
	raw.hello("")
	for _, tc := range readableButBad {
		raw.sendHeader(tc.hdr, nil)
		h, _ := raw.reply()
		assert.Equal(t, task.CodeBadRequest, h.Code, tc.name)
		assert.Equal(t, tc.id, h.ID, "%s: the reply carries the request's id", tc.name)
		assert.Equal(t, tc.op, h.Op, "%s: and its op", tc.name)
		assert.NotEmpty(t, h.Msg, tc.name)
	}
	h, _ := raw.call(wireHeader(task.OpPing, 99), nil)
	assert.Equal(t, uint64(99), h.ID, "the conversation goes on")

	pending := dialRawConn(t, d.Addr().String())
	pending.sendHeader(`{"op":"hello","id":5}`, nil)
	h, _ = pending.reply()
	assert.Equal(t, uint64(5), h.ID, "before the hello too")
	assert.Equal(t, task.OpHello, h.Op)
	assert.Equal(t, task.CodeBadRequest, h.Code)
	pending.hello("")
}

// TestInvalidKeyIsABadRequestAtOnce: the SDK's Set with a key that is not UTF-8 returns
// bad_request, the server's answer, not a timeout after its context's deadline.
func TestInvalidKeyIsABadRequestAtOnce(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Set(ctx, "bad\xff\xfe", []byte("v"))
	require.ErrorIs(t, err, client.ErrBadRequest)
	assert.NoError(t, ctx.Err(), "answered, not timed out")
	_, err = c.Get(ctx, "bad\xff\xfe")
	assert.ErrorIs(t, err, client.ErrBadRequest)
	require.NoError(t, c.Ping(ctx), "the session goes on")
}

func wireHeader(op task.Op, id uint64) wire.Header { return wire.Header{Op: op, ID: id} }

// TestConcurrentLargeRepliesAreAllAnswered: 8 concurrent mgets of 3 values of 1 MiB on one
// session (24 MiB of replies at once, over what the conversation's send queue held before) all
// get their replies; 24 get each a reply, the values or busy (the send queue's hard limit),
// never silence. Heartbeats go on meanwhile (their replies are one segment: never refused).
func TestConcurrentLargeRepliesAreAllAnswered(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	defer c.Close()
	ctx := pctest.Context(t)
	value := bytes.Repeat([]byte("v"), 1<<20)
	keys := []string{"big:1", "big:2", "big:3"}
	for _, k := range keys {
		_, err := c.Set(ctx, k, value)
		require.NoError(t, err)
	}
	for _, n := range []int{8, 24} {
		var busy atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				items, err := c.MGet(ctx, keys...)
				switch {
				case errors.Is(err, client.ErrBusy) && n > 8:
					busy.Add(1)
				case assert.NoError(t, err, "%d concurrent mgets", n):
					for _, k := range keys {
						assert.Len(t, items[k].Value, len(value))
					}
				}
			})
		}
		wg.Wait()
		require.NoError(t, ctx.Err(), "every mget answered, none waited for its deadline")
		t.Logf("%d concurrent mgets: %d answered busy", n, busy.Load())
	}
	require.NoError(t, c.Ping(ctx))
	in, _ := d.Stats()
	assert.Zero(t, in.RepliesDropped, "no reply dropped")
}
