package tests

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// Processors (exec) end to end: the built-ins, a custom processor and its failures, through
// the SDK against an in-process daemon.

// startWithProcs runs a daemon with the built-ins and extra.
func startWithProcs(tb testing.TB, cfg pipecached.Config, extra map[string]processor.Func) *pipecached.Daemon {
	tb.Helper()
	procs := processor.Default()
	for name, fn := range extra {
		require.NoError(tb, procs.Register(name, fn))
	}
	cfg.Processors = procs
	return testdaemon.Start(tb, cfg)
}

// execer runs one processor on one key and fails the test on an error.
type execer struct {
	tb        testing.TB
	c         client.Cache
	key, proc string
}

func (e execer) run(args []byte) ([]byte, uint64) {
	e.tb.Helper()
	res, v, err := e.c.Exec(pctest.Context(e.tb), e.key, e.proc, args)
	require.NoError(e.tb, err, "%s %q", e.proc, args)
	return res, v
}

func (e execer) count(args []byte) uint64 {
	e.tb.Helper()
	res, _ := e.run(args)
	n, err := processor.DecodeCount(res)
	require.NoError(e.tb, err)
	return n
}

// value reads the key with a plain get, as a client in another language would.
func (e execer) value() client.Item {
	e.tb.Helper()
	it, err := e.c.Get(pctest.Context(e.tb), e.key)
	require.NoError(e.tb, err)
	return it
}

func TestExecHash(t *testing.T) {
	c := dialT(t, testdaemon.Start(t, pipecached.Config{}).Addr().String())
	h := execer{t, c, "player:1", "hash"}
	assert.Equal(t, uint64(2), h.count(processor.HashSetArgs(processor.Field{Name: "name", Value: []byte("ann")},
		processor.Field{Name: "coins", Value: []byte("10")})))
	assert.Equal(t, uint64(0), h.count(processor.HashSetArgs(processor.Field{Name: "coins", Value: []byte("25")})), "an update adds no field")
	res, _ := h.run(processor.HashGetArgs("coins", "missing", "name"))
	got, err := processor.DecodeOptionals(res)
	require.NoError(t, err)
	assert.Equal(t, []processor.Optional{{Value: []byte("25"), Found: true}, {}, {Value: []byte("ann"), Found: true}}, got)
	assert.Equal(t, uint64(2), h.count(processor.HashLenArgs()))

	fields, err := processor.DecodeHash(h.value().Value)
	require.NoError(t, err, "the value is the documented encoding")
	assert.Equal(t, []processor.Field{{Name: "coins", Value: []byte("25")}, {Name: "name", Value: []byte("ann")}}, fields)
	res, _ = h.run(processor.HashGetAllArgs())
	all, err := processor.DecodeFields(res)
	require.NoError(t, err)
	assert.Equal(t, fields, all)

	before := h.value().Version
	assert.Equal(t, uint64(0), h.count(processor.HashDelArgs("missing")))
	assert.Equal(t, before, h.value().Version, "removing nothing changes nothing")
	assert.Equal(t, uint64(2), h.count(processor.HashDelArgs("name", "coins")))
	_, err = c.Get(pctest.Context(t), h.key)
	assert.ErrorIs(t, err, client.ErrNotFound, "removing the last field deletes the key")
}

func TestExecList(t *testing.T) {
	c := dialT(t, testdaemon.Start(t, pipecached.Config{}).Addr().String())
	l := execer{t, c, "feed:1", "list"}
	for i := range 5 {
		assert.Equal(t, uint64(min(i+1, 3)), l.count(processor.ListPushArgs(true, 3, fmt.Appendf(nil, "e%d", i))), "capped at 3")
	}
	res, _ := l.run(processor.ListRangeArgs(0, -1))
	elems, err := processor.DecodeElements(res)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("e4"), []byte("e3"), []byte("e2")}, elems, "newest first, oldest dropped")
	assert.Equal(t, uint64(5), l.count(processor.ListPushArgs(false, 0, []byte("t1"), []byte("t2"))))
	assert.Equal(t, uint64(2), l.count(processor.ListTrimArgs(-2, -1)))
	stored, err := processor.DecodeList(l.value().Value)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("t1"), []byte("t2")}, stored)
	assert.Equal(t, uint64(2), l.count(processor.ListLenArgs()))
}

func TestExecZSet(t *testing.T) {
	c := dialT(t, testdaemon.Start(t, pipecached.Config{}).Addr().String())
	z := execer{t, c, "board:1", "zset"}
	score := func(args []byte) processor.ScoreResult {
		t.Helper()
		res, _ := z.run(args)
		s, err := processor.DecodeScore(res)
		require.NoError(t, err)
		return s
	}
	assert.Equal(t, processor.ScoreResult{Status: processor.ZAdded, Score: 100}, score(processor.ZAddArgs("ann", 100, 0)))
	assert.Equal(t, processor.ScoreResult{Status: processor.ZAdded, Score: 5}, score(processor.ZIncrArgs("bob", 5)))
	assert.Equal(t, processor.ScoreResult{Status: processor.ZUpdated, Score: 130}, score(processor.ZIncrArgs("bob", 125)))
	assert.Equal(t, processor.ScoreResult{Status: processor.ZUnchanged, Score: 100}, score(processor.ZAddArgs("ann", 50, processor.ZAddGT)))
	score(processor.ZAddArgs("cid", -1, 0))

	res, _ := z.run(processor.ZRankArgs("ann", true))
	rank, err := processor.DecodeRank(res)
	require.NoError(t, err)
	assert.Equal(t, processor.RankResult{Found: true, Rank: 1, Score: 100}, rank)
	res, _ = z.run(processor.ZTopArgs(2))
	top, err := processor.DecodeMembers(res)
	require.NoError(t, err)
	assert.Equal(t, []processor.Member{{Name: "bob", Score: 130}, {Name: "ann", Score: 100}}, top)
	res, _ = z.run(processor.ZRangeArgs(0, 100, 0, 0, 0))
	inRange, err := processor.DecodeMembers(res)
	require.NoError(t, err)
	assert.Equal(t, []processor.Member{{Name: "ann", Score: 100}}, inRange)

	members, err := processor.DecodeZSet(z.value().Value)
	require.NoError(t, err, "the value is the documented encoding")
	assert.Len(t, members, 3)
	assert.Equal(t, uint64(1), z.count(processor.ZRemArgs("cid", "nobody")))
	assert.Equal(t, uint64(2), z.count(processor.ZCardArgs()))
}

// TestExecRefusesAForgedZSet (issue 23, item 15): a value written with a plain set in the zset
// layout but not canonical (a NaN, infinite or -0 score, members out of order or twice) is
// refused with wrong_type by every zset sub-command, not answered from (top used to return a
// NaN); the value stays as it was, and type calls it a string, not a zset.
func TestExecRefusesAForgedZSet(t *testing.T) {
	d := startWithProcs(t, pipecached.Config{}, nil)
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	forge := func(edit func(b []byte)) []byte {
		b, err := processor.EncodeZSet(nil, []processor.Member{{Name: "ann", Score: 1}, {Name: "bob", Score: 2}})
		require.NoError(t, err)
		edit(b)
		return b
	}
	score := func(i int, s float64) func([]byte) { // entries of 11 bytes after 21 of header, offsets, order
		return func(b []byte) { binary.BigEndian.PutUint64(b[21+11*i:], math.Float64bits(s)) }
	}
	forged := map[string][]byte{
		"nan": forge(score(0, math.NaN())), "inf": forge(score(1, math.Inf(1))),
		"negzero":  forge(score(0, math.Copysign(0, -1))),
		"unsorted": forge(func(b []byte) { copy(b[len(b)-3:], "aaa") }), // bob becomes aaa, before ann
		"twice":    forge(func(b []byte) { copy(b[len(b)-3:], "ann") }),
	}
	calls := [][]byte{processor.ZTopArgs(2), processor.ZRankArgs("ann", true), processor.ZIncrArgs("ann", 1),
		processor.ZAddArgs("cy", 3, 0), processor.ZAddManyArgs(0, processor.Member{Name: "cy", Score: 3}),
		processor.ZRemArgs("ann"), processor.ZRangeArgs(math.Inf(-1), math.Inf(1), 0, 0, 0), processor.ZCardArgs()}
	for key, value := range forged {
		v1, err := c.Set(ctx, key, value)
		require.NoError(t, err)
		for _, args := range calls {
			res, _, err := c.Exec(ctx, key, "zset", args)
			assert.ErrorIs(t, err, client.ErrWrongType, "%s: zset %x answered %x", key, args, res)
		}
		it, err := c.Get(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, value, it.Value, key)
		assert.Equal(t, v1, it.Version, key)
		typ, err := c.Type(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, "string", typ, key)
	}
}

// TestExecCustomProcessorAndItsFailures: a custom processor runs like a built-in; an unknown
// processor, bad arguments, a value the processor cannot read and a panic fail with clear
// errors and change nothing, and the key stays usable.
func TestExecCustomProcessorAndItsFailures(t *testing.T) {
	d := startWithProcs(t, pipecached.Config{}, map[string]processor.Func{
		"append": func(in processor.Input, out *processor.Output) error {
			out.Action = processor.Set
			out.Value = append(append(out.Value, in.Value...), in.Args...)
			out.Result = append(out.Result, out.Value...)
			return nil
		},
		"explode": func(in processor.Input, out *processor.Output) error {
			out.Action, out.Value = processor.Set, append(out.Value, "never stored"...)
			var m map[string]int
			m["boom"]++ // a nil map: a real bug, a panic
			return nil
		},
	})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	res, v1, err := c.Exec(ctx, "log", "append", []byte("a"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(res))
	res, v2, err := c.Exec(ctx, "log", "append", []byte("b"))
	require.NoError(t, err)
	assert.Equal(t, "ab", string(res))
	assert.Greater(t, v2, v1)

	_, err = c.Set(ctx, "plain", []byte("not a board"))
	require.NoError(t, err)
	tests := []struct {
		name, key, proc string
		args            []byte
		want            error
		msg             string
	}{
		{"unknown processor", "log", "nope", nil, client.ErrUnknownProcessor, `no processor "nope"`},
		{"bad arguments", "board", "zset", []byte("i"), client.ErrBadRequest, "bad arguments"},
		{"a value the processor cannot read", "plain", "zset", processor.ZIncrArgs("ann", 1), client.ErrWrongType, "not a zset value"},
		{"a panic", "log", "explode", nil, client.ErrInternal, "panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeErr := c.Get(ctx, tt.key)
			_, _, err := c.Exec(ctx, tt.key, tt.proc, tt.args)
			require.ErrorIs(t, err, tt.want)
			assert.ErrorContains(t, err, tt.msg)
			after, afterErr := c.Get(ctx, tt.key)
			assert.Equal(t, beforeErr, afterErr, "the key's existence is unchanged")
			assert.Equal(t, before, after, "value and version unchanged")
		})
	}
	res, _, err = c.Exec(ctx, "log", "append", []byte("c"))
	require.NoError(t, err, "the key a processor panicked on is usable")
	assert.Equal(t, "abc", string(res))

	// Panics among concurrent requests on the same key fail only themselves.
	var wg sync.WaitGroup
	for i := range 20 {
		proc := "append"
		if i%2 == 1 {
			proc = "explode"
		}
		wg.Go(func() {
			_, _, err := c.Exec(ctx, "log", proc, []byte("x"))
			if proc == "explode" {
				assert.ErrorIs(t, err, client.ErrInternal)
			} else {
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	it, err := c.Get(ctx, "log")
	require.NoError(t, err)
	assert.Equal(t, "abcxxxxxxxxxx", string(it.Value), "every append applied, no explode")
	assert.Zero(t, d.Panics(), "no handler of the loop panicked: Call recovered them")
	assert.Equal(t, uint64(11), d.Snapshot().Cache.ExecInternal)
}

// TestExecInvalidatesTheNearCache: an exec is a write for the near cache: the next get reads
// what the processor wrote, never the entry from before it. It asks the server, unless the
// push of the exec's own change has already refreshed the entry with the exec's version: that
// push and the get race, and either way is right (README: a client reads its own writes).
func TestExecInvalidatesTheNearCache(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c, err := dial(d.Addr().String(), client.WithNearCache(100, time.Hour)) // staleness: not under test
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	nearSynced(t, c)
	z := execer{t, c, "board", "zset"}
	z.run(processor.ZIncrArgs("ann", 1))
	z.value()
	z.value()
	require.Equal(t, uint64(1), c.NearCacheStats().Hits, "the second get is local")

	for score := 2; score <= 20; score++ {
		before := c.NearCacheStats()
		_, v := z.run(processor.ZIncrArgs("ann", 1))
		it := z.value()
		require.Equal(t, v, it.Version, "read your exec")
		members, err := processor.DecodeZSet(it.Value)
		require.NoError(t, err)
		require.Equal(t, []processor.Member{{Name: "ann", Score: float64(score)}}, members)
		after := c.NearCacheStats()
		require.Equal(t, before.Hits+before.Misses+1, after.Hits+after.Misses, "one get")
		if after.Hits > before.Hits {
			require.Greater(t, after.Refreshed, before.Refreshed, "a local read after the exec: only its push may have made the entry valid again")
		}
	}
}

// TestClusterExecGoesToTheKeysNode: Cluster.Exec runs on the node that owns the key.
func TestClusterExecGoesToTheKeysNode(t *testing.T) {
	a, b := testdaemon.Start(t, pipecached.Config{}), testdaemon.Start(t, pipecached.Config{})
	cl := dialCluster(t, client.StaticNodes(a.Addr().String(), b.Addr().String()))
	nodes := map[string]*client.Client{a.Addr().String(): dialT(t, a.Addr().String()), b.Addr().String(): dialT(t, b.Addr().String())}
	ctx := pctest.Context(t)
	owners := map[string]bool{}
	for i := range 20 {
		key := fmt.Sprintf("board:%d", i)
		_, v, err := cl.Exec(ctx, key, "zset", processor.ZIncrArgs("ann", float64(i)))
		require.NoError(t, err)
		owner := cl.Owner(key)
		owners[owner] = true
		it, err := nodes[owner].Get(ctx, key)
		require.NoError(t, err, "%s is on its owner %s", key, owner)
		assert.Equal(t, v, it.Version)
	}
	assert.Len(t, owners, 2, "20 keys spread over both nodes")
}

// TestExecHistoryOfAHotBoard: 20 clients increment scores on one zset concurrently, 200 times
// each. No update is lost (the final scores are the sums of the increments); every write got a
// version of its own; and a subscriber with values sees a push for every version, in increasing
// order: those a later update replaced in the same commit without their value (PROTOCOL.md,
// "Writes and what readers see"), the others each a valid zset whose scores add up to more than
// the last one's, ending with the final board.
func TestExecHistoryOfAHotBoard(t *testing.T) {
	const clients, each, members = 20, 200, 7
	d := testdaemon.Start(t, pipecached.Config{})
	ctx := pctest.Context(t)
	sub, err := dialT(t, d.Addr().String()).Subscribe(ctx, "hot", client.WithValues(), client.Buffer(clients*each+16))
	require.NoError(t, err)

	want := make([]float64, members)
	versions := make([][]uint64, clients)
	var wg sync.WaitGroup
	for g := range clients {
		c := dialT(t, d.Addr().String())
		for i := range each {
			want[(g+i)%members] += float64(i%5 + 1)
		}
		wg.Go(func() {
			for i := range each {
				res, v, err := c.Exec(ctx, "hot", "zset", processor.ZIncrArgs(fmt.Sprintf("m%d", (g+i)%members), float64(i%5+1)))
				if !assert.NoError(t, err) {
					return
				}
				if _, err := processor.DecodeScore(res); !assert.NoError(t, err) {
					return
				}
				versions[g] = append(versions[g], v)
			}
		})
	}
	wg.Wait()

	seen := map[uint64]bool{}
	var last uint64
	for _, vs := range versions {
		for _, v := range vs {
			assert.False(t, seen[v], "version %d given to two writes", v)
			seen[v] = true
			last = max(last, v)
		}
	}
	final, err := processor.DecodeZSet(execer{t, dialT(t, d.Addr().String()), "hot", "zset"}.value().Value)
	require.NoError(t, err)
	got := make([]float64, members)
	for _, m := range final {
		var i int
		_, err := fmt.Sscanf(m.Name, "m%d", &i)
		require.NoError(t, err)
		got[i] = m.Score
	}
	assert.Equal(t, want, got, "no lost update")

	var prevVersion uint64
	prevSum, pushes := -1.0, 0
	timeout := time.After(pctest.Timeout)
	for prevVersion < last {
		select {
		case ev := <-sub.C:
			require.Equal(t, client.EventSet, ev.Kind)
			require.Greater(t, ev.Version, prevVersion, "pushes in version order")
			require.True(t, seen[ev.Version], "a push for a version some exec wrote")
			pushes++
			if ev.NoValue {
				require.Less(t, ev.Version, last, "the last push carries the final board")
				prevVersion = ev.Version
				continue
			}
			board, err := processor.DecodeZSet(ev.Value)
			require.NoError(t, err, "every pushed value is a valid zset")
			sum := 0.0
			for _, m := range board {
				sum += m.Score
			}
			require.Greater(t, sum, prevSum, "each push holds more increments than the one before")
			prevVersion, prevSum = ev.Version, sum
		case <-timeout:
			t.Fatalf("the last push (version %d) never came; the last seen is %d", last, prevVersion)
		}
	}
	wantSum := 0.0
	for _, s := range want {
		wantSum += s
	}
	assert.Equal(t, wantSum, prevSum, "the last push is the final board")
	assert.Equal(t, clients*each, pushes, "a push for every version, none skipped")
	assert.Equal(t, uint64(clients*each), d.Snapshot().Cache.Execs)
}

// TestResultCodesAgree: the SDK knows every code the server can send, by the same name, each
// with a sentinel of its own (exec's new codes included).
func TestResultCodesAgree(t *testing.T) {
	for c := task.Code(1); c < 64; c++ {
		name := c.String()
		if strings.HasPrefix(name, "code(") {
			continue
		}
		assert.Equal(t, name, client.Code(c).String(), "code %d", c)
		err := &client.ServerError{Code: client.Code(c)}
		if c != task.CodeInternal {
			assert.NotErrorIs(t, err, client.ErrInternal, "code %d (%s) has a sentinel of its own", c, name)
		}
	}
	assert.ErrorIs(t, &client.ServerError{Code: client.CodeWrongType}, client.ErrWrongType)
}

// TestExecOnTheWireAsPROTOCOLSaysIt: the example of PROTOCOL.md's "exec", byte for byte, from
// a client that is not the SDK; and exec's header errors.
func TestExecOnTheWireAsPROTOCOLSaysIt(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	r := dialRawConn(t, d.Addr().String())
	r.hello("")
	args := []byte{0x69, 0x40, 0x14, 0, 0, 0, 0, 0, 0, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65}
	r.sendHeader(`{"v":1,"op":"exec","id":9,"key":"board:1","proc":"zset"}`, args)
	h, value := r.next()
	require.Equal(t, task.CodeOK, h.Code, h.Msg)
	assert.Equal(t, uint64(9), h.ID)
	assert.Equal(t, []byte{0x01, 0x40, 0x14, 0, 0, 0, 0, 0, 0}, value)
	it, err := dialT(t, d.Addr().String()).Get(pctest.Context(t), "board:1")
	require.NoError(t, err)
	assert.Equal(t, it.Version, h.Ver, "ver: the board's new version")

	for hdr, want := range map[string]task.Code{
		`{"v":1,"op":"exec","id":10,"key":"board:1"}`:                             task.CodeBadRequest,
		`{"v":1,"op":"exec","id":11,"proc":"zset"}`:                               task.CodeBadRequest,
		`{"v":1,"op":"exec","id":12,"key":"board:1","proc":"zset","flags":1}`:     task.CodeBadRequest,
		`{"v":1,"op":"exec","id":13,"key":"board:1","proc":"nope"}`:               task.CodeUnknownProc,
		`{"v":1,"op":"exec","id":14,"key":"board:1","proc":"zset","future":true}`: task.CodeBadRequest, // no arguments: bad for zset
	} {
		r.sendHeader(hdr, nil)
		h, _ := r.next()
		assert.Equal(t, want, h.Code, "%s: %s", hdr, h.Msg)
	}
}
