package tests

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// rawRequest sends h and value on a conversation of its own after a hello, and returns the
// reply's header: for requests the SDK does not make (an unknown op, a malformed value).
func rawRequest(t *testing.T, addr string, h *wire.Header, value []byte) wire.Header {
	t.Helper()
	r := dialRawConn(t, addr)
	r.hello("")
	h.ID = 2
	rh, _ := r.call(*h, value)
	return rh
}

// dial is client.Dial with the test's own bound (pctest.Timeout) as the dial timeout; options given
// after it override it. The SDK gives a hello up after a third of its dial timeout (1 s of the
// default 3 s) and says hello again on a fresh conversation: on a loaded machine the server may
// answer the first one later still, and the session it opened for it stays behind until its
// lease ends, one more session (or refusal) for a test that counts them (doc.go).
// dial dials with the tests' bounds instead of the SDK's wall-clock defaults: the dial timeout,
// and WithUnreachableAfter (1 s of silence by default: a one-loop daemon under the race detector
// on a loaded machine can be silent longer and still be alive). Options given win; the tests of
// the silence itself set their own (lostserver_test.go).
func dial(addr string, opts ...client.Option) (*client.Client, error) {
	base := []client.Option{client.WithDialTimeout(pctest.Timeout), client.WithUnreachableAfter(pctest.Timeout / 2)}
	return client.Dial(addr, append(base, opts...)...)
}

func dialT(tb testing.TB, addr string) *client.Client {
	tb.Helper()
	c, err := dial(addr)
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestEveryOperationAndItsErrors(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{MaxKey: 64, MaxValue: 1 << 16})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	_, err := c.Get(ctx, "missing")
	assert.ErrorIs(t, err, client.ErrNotFound)

	v1, err := c.Set(ctx, "k", []byte("one"))
	require.NoError(t, err)
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "one", string(it.Value))
	assert.Equal(t, v1, it.Version)

	_, err = c.Add(ctx, "k", []byte("x"))
	assert.ErrorIs(t, err, client.ErrExists)
	_, err = c.Add(ctx, "fresh", []byte("x"))
	assert.NoError(t, err)

	_, err = c.Replace(ctx, "nope", []byte("x"))
	assert.ErrorIs(t, err, client.ErrNotFound)
	v2, err := c.Replace(ctx, "k", []byte("two"))
	require.NoError(t, err)
	assert.Greater(t, v2, v1, "versions increase on every change")

	_, err = c.CAS(ctx, "k", []byte("three"), v1)
	assert.ErrorIs(t, err, client.ErrVersionMismatch)
	v3, err := c.CAS(ctx, "k", []byte("three"), v2)
	require.NoError(t, err)

	_, err = c.Incr(ctx, "k", 1)
	assert.ErrorIs(t, err, client.ErrNotCounter)
	// A missing key counts from 0, as Redis's INCR; MustExist asks for memcached's incr (#27 item 8).
	_, err = c.Incr(ctx, "no-counter", 1, client.MustExist())
	assert.ErrorIs(t, err, client.ErrNotFound)
	_, err = c.Get(ctx, "no-counter")
	assert.ErrorIs(t, err, client.ErrNotFound, "a refused incr creates nothing")
	n, err := c.Incr(ctx, "no-counter", 3)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	n, err = c.Incr(ctx, "down", -2)
	require.NoError(t, err)
	assert.Equal(t, int64(-2), n)
	n, err = c.Incr(ctx, "no-counter", 1, client.MustExist())
	require.NoError(t, err)
	assert.Equal(t, int64(4), n, "MustExist on a key that exists adds")
	_, err = c.Set(ctx, "n", []byte("10"))
	require.NoError(t, err)
	n, err = c.Incr(ctx, "n", 5)
	require.NoError(t, err)
	assert.Equal(t, int64(15), n)
	n, err = c.Incr(ctx, "n", -20)
	require.NoError(t, err)
	assert.Equal(t, int64(-5), n)

	assert.ErrorIs(t, c.Touch(ctx, "nope", time.Minute), client.ErrNotFound)
	require.NoError(t, c.Touch(ctx, "k", time.Hour))
	it, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, v3, it.Version, "touch does not change the version")

	require.NoError(t, c.Delete(ctx, "k"))
	_, err = c.Get(ctx, "k")
	assert.ErrorIs(t, err, client.ErrNotFound)
	assert.ErrorIs(t, c.Delete(ctx, "k"), client.ErrNotFound)
	v4, err := c.Set(ctx, "k", []byte("again"))
	require.NoError(t, err)
	assert.Greater(t, v4, v3, "a re-created key never reuses a version")

	items, err := c.MGet(ctx, "n", "fresh", "missing")
	require.NoError(t, err)
	assert.Len(t, items, 2)
	assert.Equal(t, "-5", string(items["n"].Value))

	_, err = c.Set(ctx, string(make([]byte, 65)), []byte("x"))
	assert.ErrorIs(t, err, client.ErrTooLarge)
	_, err = c.Set(ctx, "big", make([]byte, 1<<16+1))
	assert.ErrorIs(t, err, client.ErrTooLarge)
	h := rawRequest(t, d.Addr().String(), &wire.Header{Op: task.Op(200), Key: []byte("k")}, nil)
	assert.Equal(t, task.CodeUnknownOp, h.Code)

	stats, err := c.Stats(ctx)
	require.NoError(t, err)
	assert.Positive(t, stats["store_writes"])
	assert.Positive(t, stats["items"])
	require.NoError(t, c.Ping(ctx), "the daemon keeps serving after every error")
}

func TestTTLExpiresEverywhere(t *testing.T) {
	dir := t.TempDir()
	d := testdaemon.Start(t, pipecached.Config{Store: dir, Cache: stages.CacheConfig{NoTTLJitter: true}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	_, err := c.Set(ctx, "short", []byte("v"), client.WithTTL(100*time.Millisecond))
	require.NoError(t, err)
	_, err = c.Set(ctx, "long", []byte("v"), client.WithTTL(time.Hour))
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "short"); return errors.Is(err, client.ErrNotFound) }, "key never expired")
	require.NoError(t, d.Stop(ctx))

	s, err := nameservice.Open(dir)
	require.NoError(t, err)
	defer s.Close()
	_, ok, err := s.Get("short", time.Now().UnixMilli())
	require.NoError(t, err)
	assert.False(t, ok, "the store forgets an expired key too")
	r, ok, _ := s.Get("long", time.Now().UnixMilli())
	assert.True(t, ok)
	assert.Greater(t, r.ExpireAt, time.Now().Add(59*time.Minute).UnixMilli())
}

func TestDataSurvivesRestartAndVersionsKeepIncreasing(t *testing.T) {
	dir := t.TempDir()
	d := testdaemon.Start(t, pipecached.Config{Store: dir})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	var last uint64
	var err error
	for i := range 100 {
		last, err = c.Set(ctx, fmt.Sprint("key:", i), []byte(fmt.Sprint("value:", i)))
		require.NoError(t, err)
	}
	require.NoError(t, d.Stop(ctx))

	d2 := testdaemon.Start(t, pipecached.Config{Store: dir})
	c2 := dialT(t, d2.Addr().String())
	for i := range 100 {
		it, err := c2.Get(ctx, fmt.Sprint("key:", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint("value:", i), string(it.Value))
	}
	v, err := c2.Set(ctx, "key:0", []byte("new"))
	require.NoError(t, err)
	assert.Greater(t, v, last, "versions continue above those before the restart")
}

// TestConcurrentColdGetsMakeOneLoad: 1000 concurrent gets of one key the cache has never seen
// cause one store load (single flight).
func TestConcurrentColdGetsMakeOneLoad(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir, map[string]string{"hot": "value"})
	d := testdaemon.Start(t, pipecached.Config{Store: dir})
	ctx := pctest.Context(t)
	clients := []*client.Client{dialT(t, d.Addr().String()), dialT(t, d.Addr().String()), dialT(t, d.Addr().String())}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 1000 {
		wg.Go(func() {
			it, err := clients[i%len(clients)].Get(ctx, "hot")
			if assert.NoError(t, err) && assert.Equal(t, "value", string(it.Value)) {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1000), ok.Load())
	_, cs := d.Stats()
	assert.Equal(t, uint64(1), cs.Loads, "concurrent misses for one key must make one load")
}

// TestAbsentKeysReachTheStoreOncePerNegativeTTL: a flood of gets for keys the store does not
// have reaches the store once per key.
func TestAbsentKeysReachTheStoreOncePerNegativeTTL(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Cache: stages.CacheConfig{NegativeTTL: time.Hour}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	var wg sync.WaitGroup
	for i := range 2000 {
		wg.Go(func() {
			_, err := c.Get(ctx, fmt.Sprint("junk:", i%10))
			assert.ErrorIs(t, err, client.ErrNotFound)
		})
	}
	wg.Wait()
	_, cs := d.Stats()
	assert.Equal(t, uint64(10), cs.Loads, "each absent key should reach the store once")

	// The kill switch turns it off.
	d2 := testdaemon.Start(t, pipecached.Config{Cache: stages.CacheConfig{NoNegativeCache: true}})
	c2 := dialT(t, d2.Addr().String())
	for range 5 {
		_, err := c2.Get(ctx, "junk")
		assert.ErrorIs(t, err, client.ErrNotFound)
	}
	_, cs = d2.Stats()
	assert.Equal(t, uint64(5), cs.Loads)
}

func TestMemoryBudgetEvictsColdEntriesAndReloads(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Cache: stages.CacheConfig{Memory: 64 << 10}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	value := make([]byte, 1000)
	for i := range 500 {
		_, err := c.Set(ctx, fmt.Sprint("k", i), value)
		require.NoError(t, err)
	}
	_, cs := d.Stats()
	assert.LessOrEqual(t, cs.Bytes, int64(64<<10), "over the memory budget")
	assert.Positive(t, cs.Evictions)
	it, err := c.Get(ctx, "k0") // evicted long ago: read through from the store
	require.NoError(t, err)
	assert.Len(t, it.Value, 1000)
}

// slowStore wraps a store and makes it slow or failing on demand.
type slowStore struct {
	nameservice.Store
	delay atomic.Int64 // nanoseconds
	fail  atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *slowStore) wait() error {
	time.Sleep(time.Duration(s.delay.Load()))
	if s.fail.Load() {
		return errStoreDown
	}
	return nil
}

func (s *slowStore) Get(key string, now int64) (nameservice.Record, bool, error) {
	if err := s.wait(); err != nil {
		return nameservice.Record{}, false, err
	}
	return s.Store.Get(key, now)
}

func (s *slowStore) Commit(w []nameservice.Write) error {
	if err := s.wait(); err != nil {
		return err
	}
	return s.Store.Commit(w)
}

func TestSlowOrFailingStoreGivesCodedErrorsWhilePingAnswers(t *testing.T) {
	bolt, err := nameservice.Open(t.TempDir())
	require.NoError(t, err)
	store := &slowStore{Store: bolt}
	d := testdaemon.Start(t, pipecached.Config{OwnStore: store, Cache: stages.CacheConfig{StoreTimeout: 200 * time.Millisecond}})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	store.delay.Store(int64(3 * time.Second))
	_, err = c.Get(ctx, "cold")
	assert.ErrorIs(t, err, client.ErrTimeout)
	_, err = c.Set(ctx, "w", []byte("v"))
	assert.ErrorIs(t, err, client.ErrTimeout)
	// The store is stuck for seconds; no stage waits for it, so ping answers well within that.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second) // a ping that waited would take 3 s
	assert.NoError(t, c.Ping(pctx), "ping must not wait for the store")
	cancel()

	store.delay.Store(0)
	store.fail.Store(true)
	// Operations stuck in the slow phase finish first; then errors come back as 'unavailable'.
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "other"); return errors.Is(err, client.ErrUnavailable) }, "a failing store should give 'unavailable' on reads")
	pctest.WaitFor(t, func() bool { _, err := c.Set(ctx, "x", []byte("v")); return errors.Is(err, client.ErrUnavailable) }, "a failing store should give 'unavailable' on writes")

	store.fail.Store(false)
	pctest.WaitFor(t, func() bool { _, err := c.Set(ctx, "x", []byte("v")); return err == nil }, "service should resume when the store does")
}

// seed writes records straight into a data directory's store.
func seed(tb testing.TB, dir string, kv map[string]string) {
	s, err := nameservice.Open(dir)
	require.NoError(tb, err)
	var ws []nameservice.Write
	v := uint64(0)
	for k, val := range kv {
		v++
		ws = append(ws, nameservice.Write{Key: k, Record: nameservice.Record{Value: []byte(val), Version: v}})
	}
	require.NoError(tb, s.Commit(ws))
	require.NoError(tb, s.Close())
}

func TestMGetIsOneRequestAndLoadsEachColdKeyOnce(t *testing.T) {
	dir := t.TempDir()
	kv := map[string]string{}
	keys := []string{}
	for i := range 100 {
		k := fmt.Sprint("user:", i)
		kv[k] = fmt.Sprint("profile ", i)
		keys = append(keys, k)
	}
	seed(t, dir, kv)
	d := testdaemon.Start(t, pipecached.Config{Store: dir})
	// No heartbeat during the test: Requests counts every frame, a heartbeat too.
	c, err := dial(d.Addr().String(), client.WithHeartbeat(time.Minute, time.Hour))
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	in0, _ := d.Stats()

	items, err := c.MGet(ctx, append(keys, "ghost:1", "ghost:2")...)
	require.NoError(t, err)
	require.Len(t, items, 100)
	assert.Equal(t, "profile 42", string(items["user:42"].Value))
	assert.NotZero(t, items["user:42"].Version)
	in1, cs := d.Stats()
	assert.Equal(t, uint64(1), in1.Requests-in0.Requests, "an mget is one request on the wire")
	assert.Equal(t, uint64(102), cs.Loads, "each cold key loads once")

	items, err = c.MGet(ctx, keys...)
	require.NoError(t, err)
	assert.Len(t, items, 100)
	_, cs = d.Stats()
	assert.Equal(t, uint64(102), cs.Loads, "a second mget is served from the cache")

	tooMany := make([]string, 1001)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint(i)
	}
	_, err = c.MGet(ctx, tooMany...)
	assert.ErrorIs(t, err, client.ErrTooLarge)
	h := rawRequest(t, d.Addr().String(), &wire.Header{Op: task.OpMGet}, []byte{0, 9, 'x'})
	assert.Equal(t, task.CodeBadRequest, h.Code, "a malformed key list is a coded error")
}
