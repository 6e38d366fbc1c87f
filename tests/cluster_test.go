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
	"github.com/pipecache/pipecache/client/etcdnodes"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
)

// Clusters: several pipecached nodes over one etcd, used through client.Cluster.

// dialCluster dials a Cluster that takes a node for dead after 2 s of silence: soon enough for
// the failover tests, long enough that a loaded machine's live node is not taken for dead (its
// keys would go to other nodes for a while). opts come after, and win.
func dialCluster(t *testing.T, nodes client.Nodes, opts ...client.Option) *client.Cluster {
	t.Helper()
	opts = append([]client.Option{client.WithHeartbeat(200*time.Millisecond, 3*time.Second),
		client.WithAttemptTimeout(2 * time.Second)}, opts...)
	cl, err := client.DialCluster(pctest.Context(t), nodes, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// loadWriter sets its keys round and round until stopped. A write that fails is repeated
// (with a new value) until one succeeds, so the last write of every key is acknowledged and
// acked holds exactly what the store must hold.
type loadWriter struct {
	keys   []string
	acked  map[string]string
	n      atomic.Int64 // acknowledged writes
	failed atomic.Int64
}

func (w *loadWriter) run(ctx context.Context, cl *client.Cluster, stop <-chan struct{}) {
	seq := 0
	for i := 0; ; i++ {
		k := w.keys[i%len(w.keys)]
		for {
			seq++
			v := fmt.Sprint(seq)
			if _, err := cl.Set(ctx, k, []byte(v)); err == nil {
				w.acked[k] = v
				w.n.Add(1)
				break
			}
			w.failed.Add(1)
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// TestClusterKillNodeUnderLoad: three nodes (processes) over etcd, four writers through a
// Cluster client. One node is killed (SIGKILL) mid-load: requests for its keys fail over to
// the keys' next nodes, the member set drops it when its lease expires, about a third of the
// keys (all of them its own) move, a subscription to one of its keys moves with it, and every
// acknowledged write is in etcd and served.
func TestClusterKillNodeUnderLoad(t *testing.T) {
	e := startEtcd(t, 1)
	bin := buildDaemon(t)
	url := e.storeURL("kill")
	var ds []*daemon
	for range 3 {
		ds = append(ds, startDaemon(t, bin, "-store", url, "-member-ttl", "2s"))
	}
	cl := dialCluster(t, etcdnodes.New(url))
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 3 }, "the cluster client never saw three nodes")
	ctx := pctest.Context(t)

	victim := ds[2].addr
	const nKeys = 3000
	before := map[string]string{}
	var writers [4]*loadWriter
	for w := range writers {
		writers[w] = &loadWriter{acked: map[string]string{}}
	}
	for i := range nKeys {
		k := fmt.Sprint("player:", i)
		before[k] = cl.Owner(k)
		writers[i%len(writers)].keys = append(writers[i%len(writers)].keys, k)
	}
	subKey := ""
	for i := 0; subKey == ""; i++ {
		if k := fmt.Sprint("room:", i); cl.Owner(k) == victim {
			subKey = k
		}
	}
	sub, err := cl.Subscribe(ctx, subKey, client.WithValues())
	require.NoError(t, err)
	require.Equal(t, victim, sub.Node())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.run(ctx, cl, stop) })
	}
	acked := func() (n int64) {
		for _, w := range writers {
			n += w.n.Load()
		}
		return n
	}
	pctest.WaitFor(t, func() bool { return acked() > 2000 }, "the load never got going")
	require.NoError(t, ds[2].cmd.Process.Kill())
	killedAt, atKill := time.Now(), acked()
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 2 }, "the dead node never left the member set")
	t.Logf("member set without the dead node after %v", time.Since(killedAt).Round(time.Millisecond))
	pctest.WaitFor(t, func() bool { return acked() > atKill+2000 }, "the load did not go on after the kill")
	close(stop)
	wg.Wait()
	var failed int64
	for _, w := range writers {
		failed += w.failed.Load()
	}
	t.Logf("%d writes acknowledged, %d failed (and repeated) around the kill", acked(), failed)

	moved := 0
	for k, o := range before {
		now := cl.Owner(k)
		if o == victim {
			moved++
			assert.NotEqual(t, victim, now)
		} else {
			assert.Equal(t, o, now, "key %s moved though its node lives", k)
		}
	}
	t.Logf("%d of %d keys moved", moved, nKeys)
	assert.InDelta(t, 1.0/3, float64(moved)/nKeys, 0.06)

	st, err := nameservice.OpenEtcd(url, 3*time.Second, nil)
	require.NoError(t, err)
	defer st.Close()
	for _, w := range writers {
		for k, v := range w.acked {
			r, ok, err := st.Get(k, time.Now().UnixMilli())
			require.NoError(t, err)
			require.True(t, ok, "acknowledged key %s is not in etcd", k)
			require.Equal(t, v, string(r.Value), "etcd lost the acknowledged write of %s", k)
			pctest.WaitFor(t, func() bool {
				it, err := cl.Get(ctx, k)
				return err == nil && string(it.Value) == v
			}, "%s", fmt.Sprintf("the cluster does not serve the acknowledged %s=%s", k, v))
		}
	}

	pctest.WaitFor(t, func() bool { return sub.Node() != victim }, "the subscription never left the dead node")
	_, err = cl.Set(ctx, subKey, []byte("after the move"))
	require.NoError(t, err)
	for ev := range sub.C {
		if ev.Kind == client.EventSet && string(ev.Value) == "after the move" {
			break
		}
		if ev.Kind == client.EventResync {
			assert.Equal(t, subKey, ev.Key)
		}
	}
}

// TestClusterStaticNodesFailover: with a static node list (no membership), a node that stops
// answering is skipped: its keys are served by their next nodes after one attempt timeout.
func TestClusterStaticNodesFailover(t *testing.T) {
	e := startEtcd(t, 1)
	var nodes []*pipecached.Daemon
	var addrs []string
	for range 3 {
		d := startOnEtcd(t, e, "static")
		nodes, addrs = append(nodes, d), append(addrs, d.Addr().String())
	}
	cl := dialCluster(t, client.StaticNodes(addrs...))
	ctx := pctest.Context(t)
	for i := range 300 {
		_, err := cl.Set(ctx, fmt.Sprint("k", i), []byte("v"))
		require.NoError(t, err)
	}
	require.NoError(t, nodes[0].Stop(ctx))
	for i := range 300 {
		k := fmt.Sprint("k", i)
		it, err := cl.Get(ctx, k)
		require.NoError(t, err, "key %s", k)
		assert.Equal(t, "v", string(it.Value))
		assert.NotEqual(t, addrs[0], cl.Owner(k))
	}
}

// TestClusterSurvivesEtcdMemberDeath: a three-member etcd loses one member, its leader:
// writes, reads, notifications across nodes and the member set go on.
func TestClusterSurvivesEtcdMemberDeath(t *testing.T) {
	e := startEtcd(t, 3)
	for i := range 3 {
		e.waitHealthy(i)
	}
	a, b := startOnEtcd(t, e, "three"), startOnEtcd(t, e, "three")
	url := e.storeURL("three")
	cl := dialCluster(t, etcdnodes.New(url))
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 2 }, "the cluster client never saw two nodes")
	ctx := pctest.Context(t)
	cb := dialT(t, b.Addr().String())
	sub, err := dialT(t, a.Addr().String()).Subscribe(ctx, "m:", client.Prefix(), client.WithValues())
	require.NoError(t, err)

	leader := e.leader()
	t.Logf("killing etcd member %d, the leader", leader)
	e.kill(leader)
	// Requests that were at the dead member fail until the etcd client moves to another
	// one; after that, everything must work.
	pctest.WaitFor(t, func() bool { _, err := cl.Set(ctx, "probe", []byte("x")); return err == nil }, "no write succeeded after the member died")
	for i := range 200 {
		k := fmt.Sprint("m:", i)
		_, err := cl.Set(ctx, k, []byte(fmt.Sprint(i)))
		require.NoError(t, err, "write %d after a member died", i)
		it, err := cl.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(i), string(it.Value))
	}
	_, err = cb.Set(ctx, "m:via-b", []byte("b"))
	require.NoError(t, err)
	for ev := range sub.C {
		if ev.Key == "m:via-b" {
			assert.Equal(t, "b", string(ev.Value))
			break
		}
	}
	// The leases must stay alive: watch the member set for longer than a TTL.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		require.Len(t, cl.Nodes(), 2, "a node dropped out of the member set")
		<-time.After(50 * time.Millisecond)
	}
}

// TestAllEtcdDown: with etcd gone, writes and cold reads fail "unavailable"; cached keys fail
// too on a node in the default (consistent) mode, and are served flagged stale on a node
// started with stale reads. When etcd comes back everything resumes by itself: fresh reads,
// writes, and changes from one node reaching the other's cache.
func TestAllEtcdDown(t *testing.T) {
	e := startEtcd(t, 1)
	start := func(stale bool) *pipecached.Daemon {
		st, err := nameservice.OpenEtcd(e.storeURL("down"), time.Second, nil)
		require.NoError(t, err)
		cfg := pipecached.Config{OwnStore: st}
		cfg.Cache.StaleReads, cfg.Cache.StoreTimeout, cfg.Outgoing.ProbeInterval = stale, 3*time.Second, 100*time.Millisecond
		return testdaemon.Start(t, cfg)
	}
	strict, lenient := start(false), start(true)
	cs, cl := dialT(t, strict.Addr().String()), dialT(t, lenient.Addr().String())
	ctx := pctest.Context(t)
	_, err := cs.Set(ctx, "k", []byte("v1"))
	require.NoError(t, err)
	for _, c := range []*client.Client{cs, cl} {
		it, err := c.Get(ctx, "k")
		require.NoError(t, err)
		require.False(t, it.Stale)
	}

	e.kill(0)
	pctest.WaitFor(t, func() bool { _, err := cs.Get(ctx, "k"); return errors.Is(err, client.ErrUnavailable) },
		"the strict node kept serving a copy it could not check")
	pctest.WaitFor(t, func() bool { it, err := cl.Get(ctx, "k"); return err == nil && it.Stale }, "the lenient node never flagged its copy stale")
	it, err := cl.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v1", string(it.Value))
	items, err := cl.MGet(ctx, "k")
	require.NoError(t, err)
	assert.True(t, items["k"].Stale, "an mget served from the cache must be flagged too")
	_, err = cs.MGet(ctx, "k")
	assert.ErrorIs(t, err, client.ErrUnavailable)
	_, err = cs.Set(ctx, "k", []byte("v2"))
	assert.ErrorIs(t, err, client.ErrUnavailable, "a write with etcd down")
	_, err = cl.Get(ctx, "cold")
	assert.ErrorIs(t, err, client.ErrUnavailable, "a cold read with etcd down")
	stats, err := cl.Stats(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, stats["store_unreachable"])
	assert.Positive(t, stats["stale_reads"])

	e.restart(0)
	pctest.WaitFor(t, func() bool { _, err := cs.Set(ctx, "k", []byte("v3")); return err == nil }, "writes never resumed")
	pctest.WaitFor(t, func() bool {
		it, err := cl.Get(ctx, "k")
		return err == nil && !it.Stale && string(it.Value) == "v3"
	}, "the lenient node never caught up with the write made through the other")
	pctest.WaitFor(t, func() bool {
		it, err := cs.Get(ctx, "k")
		return err == nil && !it.Stale && string(it.Value) == "v3"
	}, "the strict node never served fresh reads again")
	stats, err = cs.Stats(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 0, stats["store_unreachable"])
}

// TestClusterJoinAndLeave: a node that joins takes about a third of the keys, all from the
// others; a node stopped with Stop leaves the member set at once (not at its lease's end) and
// requests racing its departure are retried on the keys' next nodes, so none fails.
func TestClusterJoinAndLeave(t *testing.T) {
	e := startEtcd(t, 1)
	a := startOnEtcd(t, e, "join")
	startOnEtcd(t, e, "join")
	cl := dialCluster(t, etcdnodes.New(e.storeURL("join")))
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 2 }, "the cluster client never saw two nodes")
	ctx := pctest.Context(t)
	const nKeys = 3000
	before := map[string]string{}
	for i := range nKeys {
		k := fmt.Sprint("j", i)
		_, err := cl.Set(ctx, k, []byte(k))
		require.NoError(t, err)
		before[k] = cl.Owner(k)
	}

	c := startOnEtcd(t, e, "join")
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 3 }, "the cluster client never saw the third node")
	moved := 0
	for k, o := range before {
		if now := cl.Owner(k); now != o {
			moved++
			require.Equal(t, c.Addr().String(), now, "a join moved %s between old nodes", k)
		}
	}
	t.Logf("the join moved %d of %d keys", moved, nKeys)
	assert.InDelta(t, 1.0/3, float64(moved)/nKeys, 0.06)

	stop := make(chan struct{})
	var errs, gets atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				k := fmt.Sprint("j", i%nKeys)
				if it, err := cl.Get(ctx, k); err != nil || string(it.Value) != k {
					errs.Add(1)
					t.Errorf("get %s during a leave: %v", k, err)
				}
				gets.Add(1)
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	pctest.WaitFor(t, func() bool { return gets.Load() >= 200 }, "no gets before the leave")
	left := time.Now()
	require.NoError(t, a.Stop(ctx))
	pctest.WaitFor(t, func() bool { return len(cl.Nodes()) == 2 }, "the stopped node never left")
	t.Logf("the stopped node left the member set after %v", time.Since(left).Round(time.Millisecond))
	after := gets.Load()
	pctest.WaitFor(t, func() bool { return gets.Load() >= after+200 }, "no gets after the leave")
	close(stop)
	wg.Wait()
	assert.Zero(t, errs.Load())
	for k := range before {
		assert.NotEqual(t, a.Addr().String(), cl.Owner(k))
	}
}

// TestDaemonWaitsForEtcd: a node started before etcd waits for it (-store-wait), then serves.
func TestDaemonWaitsForEtcd(t *testing.T) {
	e := startEtcd(t, 1)
	e.kill(0)
	started := e.startAfter(0, 4*time.Second) // longer than one attempt (-store-timeout 2s)
	d := startDaemon(t, buildDaemon(t), "-store", e.storeURL("wait"), "-store-wait", "1m")
	require.NoError(t, <-started)
	c := dialT(t, d.addr)
	_, err := c.Set(pctest.Context(t), "k", []byte("v"))
	require.NoError(t, err)
}

// TestClusterWaitsForASlowNode: a node whose store is slow is alive (it keeps answering
// heartbeats), so a request to it waits for its reply rather than failing over after the
// attempt timeout. The two nodes have separate stores here, so where the write landed shows
// which node served it.
func TestClusterWaitsForASlowNode(t *testing.T) {
	var addrs []string
	var stores []*slowStore
	for range 2 {
		bolt, err := nameservice.Open(t.TempDir())
		require.NoError(t, err)
		st := &slowStore{Store: bolt}
		d := testdaemon.Start(t, pipecached.Config{OwnStore: st, Cache: stages.CacheConfig{StoreTimeout: 30 * time.Second}})
		addrs, stores = append(addrs, d.Addr().String()), append(stores, st)
	}
	// The store is slower than the attempt timeout (3 s to 1 s): a node taken for dead because
	// its store is slow would show here.
	cl := dialCluster(t, client.StaticNodes(addrs...), client.WithAttemptTimeout(time.Second))
	ctx := pctest.Context(t)
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("slow", i); cl.Owner(k) == addrs[0] {
			key = k
		}
	}
	_, err := cl.Set(ctx, "warm-up", []byte("x")) // connections open before the store slows down
	require.NoError(t, err)
	_, err = cl.Get(ctx, key)
	require.ErrorIs(t, err, client.ErrNotFound)

	stores[0].delay.Store(int64(3 * time.Second))
	start := time.Now()
	_, err = cl.Set(ctx, key, []byte("v"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 3*time.Second, "the write did not wait for the slow store")
	stores[0].delay.Store(0)
	assert.Equal(t, addrs[0], cl.Owner(key), "the slow node was taken for dead")
	r, ok, err := stores[0].Get(key, time.Now().UnixMilli())
	require.NoError(t, err)
	require.True(t, ok, "the write went elsewhere")
	assert.Equal(t, "v", string(r.Value))
}
