package stages

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// countingType is the zset Type, counting its decodings; a call whose arguments are "boom"
// changes the value and then panics.
type countingType struct{ decodes atomic.Int64 }

func (c *countingType) Decode(b []byte) (processor.Value, error) {
	c.decodes.Add(1)
	v, err := processor.ZSetType.Decode(b)
	if err != nil {
		return nil, err
	}
	return boomValue{v}, nil
}

func (c *countingType) Empty() processor.Value { return boomValue{processor.ZSetType.Empty()} }

type boomValue struct{ processor.Value }

func (b boomValue) Exec(in processor.Input, out *processor.Output) error {
	if string(in.Args) == "boom" {
		b.Value.Exec(processor.Input{Args: processor.ZIncrArgs("boom", 1)}, out)
		panic("boom")
	}
	return b.Value.Exec(in, out)
}

func liveRig(t *testing.T) (*writeRig, *countingType) {
	typ := &countingType{}
	procs := processor.Default()
	require.NoError(t, procs.RegisterType("board", typ))
	return newWriteRig(t, CacheConfig{Processors: procs}, OutgoingConfig{}), typ
}

func zincr(member string, delta float64) func(*task.Task) {
	return func(t *task.Task) {
		t.Proc, t.Value = append(t.Proc, "board"...), append(t.Value, processor.ZIncrArgs(member, delta)...)
	}
}

func board(tb testing.TB, b []byte) map[string]float64 {
	tb.Helper()
	ms, err := processor.DecodeZSet(b)
	require.NoError(tb, err)
	m := map[string]float64{}
	for _, x := range ms {
		m[x.Name] = x.Score
	}
	return m
}

// TestLiveValuesStayDecoded: a processor of a Type decodes a key's value once; the calls after
// it change the live value in place and each commit writes its encoding, which reads return; a
// write by another op drops it (the next call decodes again); the memory budget counts it.
func TestLiveValuesStayDecoded(t *testing.T) {
	r, typ := liveRig(t)
	var last uint64
	for i := range 50 {
		last = r.send(t, task.OpExec, "b", zincr([]string{"ann", "bob"}[i%2], 1))
	}
	require.Equal(t, task.CodeOK, r.wait(t, last).Code)
	assert.Equal(t, int64(0), typ.decodes.Load(), "a key that does not exist starts empty: nothing to decode")
	get := r.wait(t, r.send(t, task.OpGet, "b", nil))
	assert.Equal(t, map[string]float64{"ann": 25, "bob": 25}, board(t, get.Value), "a read returns the encoding")
	v, _ := r.store.value("b")
	assert.Equal(t, string(get.Value), v, "the store has the same bytes")

	var liveMem int64
	require.NoError(t, r.cache.Loop().Run(pctest.Context(t), func() { liveMem = r.cache.exec.liveMem }))
	assert.Positive(t, liveMem, "the live value is counted")
	assert.GreaterOrEqual(t, r.cache.Stats().Bytes, liveMem)

	require.Equal(t, task.CodeOK, r.wait(t, r.send(t, task.OpSet, "b", func(tk *task.Task) { tk.Value = append(tk.Value, get.Value...) })).Code)
	require.NoError(t, r.cache.Loop().Run(pctest.Context(t), func() { liveMem = r.cache.exec.liveMem }))
	assert.Zero(t, liveMem, "a set drops the live value")
	res := r.wait(t, r.send(t, task.OpExec, "b", zincr("ann", 5)))
	require.Equal(t, task.CodeOK, res.Code, "%v", res.Err)
	assert.Equal(t, int64(1), typ.decodes.Load(), "decoded again, once")
	s, err := processor.DecodeScore(res.Value)
	require.NoError(t, err)
	assert.Equal(t, 30.0, s.Score)
}

// TestAFailedCommitDropsTheLiveValue: the calls a failed commit carried, and those after them,
// fail; the next call runs on the durable value, decoded again.
func TestAFailedCommitDropsTheLiveValue(t *testing.T) {
	r, typ := liveRig(t)
	require.Equal(t, task.CodeOK, r.wait(t, r.send(t, task.OpExec, "b", zincr("ann", 1))).Code)
	r.store.hold()
	a := r.send(t, task.OpExec, "b", zincr("ann", 10))
	r.store.waitArrived(t, 2)
	b := r.send(t, task.OpExec, "b", zincr("ann", 100))
	r.barrier(t)
	r.store.decide(1, errDiskOnFire)
	assert.Equal(t, task.CodeUnavailable, r.wait(t, a).Code)
	assert.Equal(t, task.CodeUnavailable, r.wait(t, b).Code)
	c := r.send(t, task.OpExec, "b", zincr("ann", 1000))
	r.store.waitArrived(t, 3)
	r.store.decide(2, nil)
	res := r.wait(t, c)
	require.Equal(t, task.CodeOK, res.Code)
	s, err := processor.DecodeScore(res.Value)
	require.NoError(t, err)
	assert.Equal(t, 1001.0, s.Score, "ann is back at her durable score, 1")
	assert.Equal(t, int64(1), typ.decodes.Load(), "the durable value was decoded again")
}

// TestAPanicOnALiveValueDropsIt: a processor that panics half way through a change fails its
// request and leaves the key as it was.
func TestAPanicOnALiveValueDropsIt(t *testing.T) {
	r, _ := liveRig(t)
	require.Equal(t, task.CodeOK, r.wait(t, r.send(t, task.OpExec, "b", zincr("ann", 1))).Code)
	boom := r.wait(t, r.send(t, task.OpExec, "b", func(tk *task.Task) {
		tk.Proc, tk.Value = append(tk.Proc, "board"...), append(tk.Value, "boom"...)
	}))
	assert.Equal(t, task.CodeInternal, boom.Code)
	res := r.wait(t, r.send(t, task.OpExec, "b", zincr("ann", 1)))
	require.Equal(t, task.CodeOK, res.Code)
	get := r.wait(t, r.send(t, task.OpGet, "b", nil))
	assert.Equal(t, map[string]float64{"ann": 2}, board(t, get.Value), "nothing of the panicking call stayed")
}

// TestAForgedZSetIsRefused: a value laid out as a zset but not canonical (a NaN score), written
// by a plain set, is refused by every zset call (issue 23, item 15) and stays as it was.
func TestAForgedZSetIsRefused(t *testing.T) {
	r, _ := liveRig(t)
	forged, err := processor.EncodeZSet(nil, []processor.Member{{Name: "ann", Score: 1}})
	require.NoError(t, err)
	copy(forged[len(forged)-11:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1}) // ann's score: a NaN
	require.Equal(t, task.CodeOK, r.wait(t, r.send(t, task.OpSet, "f", func(tk *task.Task) { tk.Value = append(tk.Value, forged...) })).Code)
	for _, args := range [][]byte{processor.ZTopArgs(1), processor.ZIncrArgs("ann", 1), processor.ZCardArgs()} {
		res := r.wait(t, r.send(t, task.OpExec, "f", func(tk *task.Task) {
			tk.Proc, tk.Value = append(tk.Proc, "zset"...), append(tk.Value, args...)
		}))
		assert.Equal(t, task.CodeWrongType, res.Code, "args %x", args)
	}
	get := r.wait(t, r.send(t, task.OpGet, "f", nil))
	assert.True(t, bytes.Equal(forged, get.Value))
}

// TestForgedValuesFromTheStoreAreRefused: values already in the store (written by an older
// server, another tool or a plain set), laid out as a built-in's but not canonical, are refused
// with wrong_type by every sub-command of their processor when they are loaded and decoded
// (issue 23, item 15); nothing is written, the value stays as it was, and `type` does not name
// a processor that refuses the value.
func TestForgedValuesFromTheStoreAreRefused(t *testing.T) {
	r, _ := liveRig(t)
	zset := func(scores ...float64) []byte {
		b, err := processor.EncodeZSet(nil, []processor.Member{{Name: "ann", Score: 1}, {Name: "bob", Score: 2}})
		require.NoError(t, err)
		for i, s := range scores { // entries of 11 bytes, after the 21 of header, offsets and order
			binary.BigEndian.PutUint64(b[21+11*i:], math.Float64bits(s))
		}
		return b
	}
	hash, err := processor.EncodeHash(nil, []processor.Field{{Name: "a", Value: []byte("1")}, {Name: "b", Value: []byte("2")}})
	require.NoError(t, err)
	hash[len(hash)-2] = 'a' // field "b" becomes a second "a"
	list, err := processor.EncodeList(nil, [][]byte{[]byte("x"), []byte("y")})
	require.NoError(t, err)
	binary.BigEndian.PutUint32(list[9:], 9) // the second element past the end
	forged := map[string][]byte{
		"nan": zset(math.NaN(), 2), "inf": zset(1, math.Inf(1)), "negzero": zset(math.Copysign(0, -1), 2),
		"unsorted": append(zset(1, 2)[:len(zset(1, 2))-3:len(zset(1, 2))-3], "aaa"...), // bob becomes aaa, before ann
		"hash":     hash, "list": list,
	}
	r.store.mu.Lock()
	for k, v := range forged {
		r.store.data[k] = nameservice.Record{Value: v, Version: 7}
	}
	r.store.mu.Unlock()
	calls := map[string][][]byte{
		"zset": {processor.ZTopArgs(2), processor.ZRankArgs("ann", true), processor.ZIncrArgs("ann", 1),
			processor.ZAddArgs("cy", 3, 0), processor.ZAddManyArgs(0, processor.Member{Name: "cy", Score: 3}),
			processor.ZRemArgs("ann"), processor.ZRangeArgs(math.Inf(-1), math.Inf(1), 0, 0, 0), processor.ZCardArgs()},
		"hash": {processor.HashGetArgs("a"), processor.HashSetArgs(processor.Field{Name: "c"}), processor.HashDelArgs("a"),
			processor.HashGetAllArgs(), processor.HashLenArgs()},
		"list": {processor.ListRangeArgs(0, -1), processor.ListPushArgs(true, 0, []byte("z")), processor.ListTrimArgs(0, 0),
			processor.ListLenArgs()},
	}
	for key, value := range forged {
		proc := map[string]string{"hash": "hash", "list": "list"}[key]
		if proc == "" {
			proc = "zset"
		}
		for _, args := range calls[proc] {
			res := r.wait(t, r.send(t, task.OpExec, key, func(tk *task.Task) {
				tk.Proc, tk.Value = append(tk.Proc, proc...), append(tk.Value, args...)
			}))
			assert.Equal(t, task.CodeWrongType, res.Code, "%s: %s %x answered %x", key, proc, args, res.Value)
		}
		typ := r.wait(t, r.send(t, task.OpType, key, nil))
		assert.Equal(t, "string", string(typ.Value), "%s: type", key)
		get := r.wait(t, r.send(t, task.OpGet, key, nil))
		assert.True(t, bytes.Equal(value, get.Value), "%s: the value is as it was", key)
		assert.Equal(t, uint64(7), get.Version, key)
	}
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	assert.Empty(t, r.store.commits, "nothing was written")
}
