package tests

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestEmptyKeyIsRefusedAndNeverPoisonsAGroupCommit: a set with an empty key is a bad request
// for that request only; another client's writes in the same group commits all succeed.
func TestEmptyKeyIsRefusedAndNeverPoisonsAGroupCommit(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	bad := dialRawConn(t, d.Addr().String())
	bad.hello("")
	good := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	for _, op := range []task.Op{task.OpGet, task.OpSet, task.OpAdd, task.OpReplace, task.OpCAS,
		task.OpDelete, task.OpIncr, task.OpTouch, task.OpSubscribe, task.OpUnsubscribe} {
		h, _ := bad.call(wire.Header{Op: op, ID: 7}, []byte("v"))
		assert.Equal(t, task.CodeBadRequest, h.Code, "%s with an empty key", op)
		assert.Equal(t, uint64(7), h.ID)
	}
	h, _ := bad.call(wire.Header{Op: task.OpMGet, ID: 8}, wire.AppendKeys(nil, []string{"a", ""}))
	assert.Equal(t, task.CodeBadRequest, h.Code, "mget with an empty key: %s", h.Msg)
	assert.Equal(t, uint64(8), h.ID)

	var failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // the bad client keeps sending empty-key sets, many in flight
		for i := range 2000 {
			bad.send(wire.Header{Op: task.OpSet, ID: uint64(100 + i)}, []byte("x"))
		}
		for range 2000 {
			if h, _ := bad.reply(); h.Code != task.CodeBadRequest {
				t.Errorf("empty-key set answered %s (%s)", h.Code, h.Msg)
			}
		}
	})
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := good.Set(ctx, fmt.Sprintf("g%d:%d", g, i), []byte("v")); err != nil {
					failed.Add(1)
					t.Log(err)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "a good client's writes failed beside empty-key sets")
	it, err := good.Get(ctx, "g7:99")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
}

// TestUndefinedFlagsNeverReachInternalBits: a request's flags are the client's; bits the
// protocol does not define for its op are refused, and nothing a client sends can wedge a key.
func TestUndefinedFlagsNeverReachInternalBits(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	raw := dialRawConn(t, d.Addr().String())
	raw.hello("")
	good := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	for bit := range 32 {
		flags := uint32(1) << bit
		for _, op := range []task.Op{task.OpGet, task.OpSet, task.OpDelete, task.OpIncr, task.OpEcho, task.OpHeartbeat} {
			id := uint64(1000 + bit)
			h, _ := raw.call(wire.Header{Op: op, ID: id, Key: []byte("wedge"), Flags: flags}, []byte("1"))
			assert.Equal(t, id, h.ID, "%s with flags %#x: answered with its own id", op, flags)
			if op == task.OpIncr && flags == task.FlagMustExist { // defined: memcached's incr
				assert.Equal(t, task.CodeNotFound, h.Code, "incr must-exist of a missing key")
				continue
			}
			assert.Equal(t, task.CodeBadRequest, h.Code, "%s with undefined flags %#x", op, flags)
		}
		keys := wire.AppendKeys(nil, []string{"wedge", "other"})
		h, _ := raw.call(wire.Header{Op: task.OpMGet, ID: 9, Flags: flags}, keys)
		assert.Equal(t, task.CodeBadRequest, h.Code, "mget with undefined flags %#x", flags)
		if flags&(task.FlagPrefix|task.FlagWithValue) == 0 {
			h, _ = raw.call(wire.Header{Op: task.OpSubscribe, ID: 10, Key: []byte("wedge"), Flags: flags}, nil)
			assert.Equal(t, task.CodeBadRequest, h.Code, "subscribe with undefined flags %#x", flags)
		}
	}
	// The key is not wedged: another client writes and reads it.
	_, err := good.Set(ctx, "wedge", []byte("fine"))
	require.NoError(t, err)
	it, err := good.Get(ctx, "wedge")
	require.NoError(t, err)
	assert.Equal(t, "fine", string(it.Value))

	// goodbye with a stray bit is still answered, and the conversation stays open.
	h, _ := raw.call(wire.Header{Op: task.OpGoodbye, ID: 11, Flags: 1 << 18}, nil)
	assert.Equal(t, uint64(11), h.ID)
	h, _ = raw.call(wire.Header{Op: task.OpPing, ID: 12}, nil)
	assert.Equal(t, uint64(12), h.ID, "the conversation answers after that goodbye")
	assert.Zero(t, d.Panics(), "no handler panicked")
}

// TestFrameErrorsCarryNoOneElsesID: a frame whose header cannot be read is answered with id 0
// and no op, even when another conversation's frame was decoded just before it.
func TestFrameErrorsCarryNoOneElsesID(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	other := dialRawConn(t, d.Addr().String())
	other.hello("")
	bad := dialRawConn(t, d.Addr().String())
	bad.hello("")

	for i := range 20 {
		other.send(wire.Header{Op: task.OpDelete, ID: 777777, Key: []byte("theirs")}, nil)
		switch i % 2 {
		case 0: // hlen runs past the frame
			bad.sendRaw([]byte{0, 0, 0, 4, 0, 0x40, '{', '}'})
		default: // a header over 8 KiB
			hdr := `{"v":1,"op":"set","id":5,"pad":"` + fmt.Sprintf("%09000d", 0) + `"}`
			bad.sendHeader(hdr, nil)
		}
		h, _ := bad.reply()
		assert.Equal(t, task.CodeBadRequest, h.Code)
		assert.Zero(t, h.ID, "a frame error is answered with id 0")
		assert.Equal(t, task.OpNone, h.Op, "and no op")
		oh, _ := other.reply()
		assert.Equal(t, uint64(777777), oh.ID)
	}
}

// TestRepliesCarryOnlyTheirOwnFields: session replies do not echo the request's value, and the
// reply to an unknown op carries the op sent.
func TestRepliesCarryOnlyTheirOwnFields(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	raw := dialRawConn(t, d.Addr().String())
	raw.hello("")
	for _, h := range []wire.Header{
		{Op: task.OpHeartbeat, ID: 2},
		{Op: task.OpSubscribe, ID: 3, Key: []byte("k")},
		{Op: task.OpUnsubscribe, ID: 4, Key: []byte("k")},
		{Op: task.OpPing, ID: 5},
		{Op: task.OpDelete, ID: 6, Key: []byte("absent")},
		{Op: task.OpGoodbye, ID: 7},
	} {
		rh, v := raw.call(h, []byte("echo me not"))
		assert.Equal(t, h.ID, rh.ID)
		assert.Equal(t, h.Op, rh.Op, "the reply carries the request's op")
		assert.Empty(t, v, "%s reply must not echo the request's value", h.Op)
	}
	raw.sendHeader(`{"v":1,"op":"teleport","id":8}`, nil)
	rh, _ := raw.reply()
	assert.Equal(t, task.CodeUnknownOp, rh.Code)
	assert.Equal(t, "teleport", rh.OpName, "the reply to an unknown op carries the op sent")
	assert.Equal(t, uint64(8), rh.ID)
}

// TestIncrOverflowIsAnErrorAndChangesNothing: like Redis, incr refuses to wrap around.
func TestIncrOverflowIsAnErrorAndChangesNothing(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	for _, tc := range []struct {
		start int64
		delta int64
	}{{math.MaxInt64, 1}, {math.MinInt64, -1}, {math.MaxInt64 - 5, 10}, {-2, math.MinInt64}} {
		key := fmt.Sprintf("n%d", tc.start)
		_, err := c.Set(ctx, key, []byte(strconv.FormatInt(tc.start, 10)))
		require.NoError(t, err)
		_, err = c.Incr(ctx, key, tc.delta)
		assert.ErrorIs(t, err, client.ErrOverflow, "%d + %d", tc.start, tc.delta)
		it, err := c.Get(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, strconv.FormatInt(tc.start, 10), string(it.Value), "the value is unchanged")
	}
	_, err := c.Set(ctx, "edge", []byte(strconv.FormatInt(math.MaxInt64-1, 10)))
	require.NoError(t, err)
	n, err := c.Incr(ctx, "edge", 1)
	require.NoError(t, err, "reaching MaxInt64 exactly is fine")
	assert.Equal(t, int64(math.MaxInt64), n)
}
