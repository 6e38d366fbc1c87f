package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
)

// etcdCluster is a real etcd (the Debian etcd-server binary) on loopback ports, one or more
// members, started for a test and stopped after it. Members can be killed and restarted (on
// their data directory and ports).
type etcdCluster struct {
	t          testing.TB
	bin        string
	clientURLs []string
	args       [][]string  // each member's command line
	procs      []*exec.Cmd // nil while a member is down
}

func (e *etcdCluster) storeURL(prefix string) string {
	u := "etcd://"
	for i, c := range e.clientURLs {
		if i > 0 {
			u += ","
		}
		u += c[len("http://"):]
	}
	return u + "/" + prefix
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd starts an etcd cluster of n members, or skips the test if etcd is not installed.
func startEtcd(t testing.TB, n int) *etcdCluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("etcd not installed (.ci/run installs etcd-server)")
		}
		t.Skip("etcd not installed (apt-get install etcd-server)")
	}
	e := &etcdCluster{t: t, bin: bin, procs: make([]*exec.Cmd, n)}
	var peers []string
	initial := ""
	for i := range n {
		peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		peers = append(peers, peer)
		if i > 0 {
			initial += ","
		}
		initial += fmt.Sprintf("m%d=%s", i, peer)
		e.clientURLs = append(e.clientURLs, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	}
	for i := range n {
		e.args = append(e.args, []string{"--name", fmt.Sprint("m", i), "--data-dir", t.TempDir(),
			"--listen-client-urls", e.clientURLs[i], "--advertise-client-urls", e.clientURLs[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", initial, "--initial-cluster-state", "new", "--log-level", "error"})
		e.start(i)
	}
	t.Cleanup(func() {
		for i := range e.procs {
			e.kill(i)
		}
	})
	e.waitHealthy(0)
	return e
}

func (e *etcdCluster) start(i int) {
	cmd := exec.Command(e.bin, e.args[i]...)
	require.NoError(e.t, cmd.Start())
	e.procs[i] = cmd
}

// startAfter starts member i again after d, in the background; receive from the channel
// before touching the cluster again.
func (e *etcdCluster) startAfter(i int, d time.Duration) <-chan error {
	done := make(chan error, 1)
	time.AfterFunc(d, func() {
		cmd := exec.Command(e.bin, e.args[i]...)
		err := cmd.Start()
		if err == nil {
			e.procs[i] = cmd
		}
		done <- err
	})
	return done
}

// kill stops member i at once (SIGKILL).
func (e *etcdCluster) kill(i int) {
	if cmd := e.procs[i]; cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
		e.procs[i] = nil
	}
}

// restart starts member i again on its data and ports, and waits until it is healthy.
func (e *etcdCluster) restart(i int) {
	e.start(i)
	e.waitHealthy(i)
}

// leader returns the index of the member that leads the cluster now.
func (e *etcdCluster) leader() int {
	out, err := exec.Command("etcdctl", "--endpoints", strings.Join(e.clientURLs, ","), "endpoint", "status", "-w", "json").Output()
	require.NoError(e.t, err)
	var status []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			}
			Leader uint64
		}
	}
	require.NoError(e.t, json.Unmarshal(out, &status))
	for _, st := range status {
		if st.Status.Header.MemberID == st.Status.Leader {
			return slices.Index(e.clientURLs, st.Endpoint)
		}
	}
	e.t.Fatalf("no etcd leader in %s", out)
	return -1
}

func (e *etcdCluster) waitHealthy(i int) {
	pctest.WaitFor(e.t, func() bool {
		out, err := exec.Command("etcdctl", "--endpoints", e.clientURLs[i], "endpoint", "health").CombinedOutput()
		return err == nil && len(out) > 0
	}, "etcd never became healthy")
}

func startOnEtcd(t *testing.T, e *etcdCluster, prefix string) *pipecached.Daemon {
	t.Helper()
	st, err := nameservice.OpenEtcd(e.storeURL(prefix), 3*time.Second, nil)
	require.NoError(t, err)
	return testdaemon.Start(t, pipecached.Config{OwnStore: st})
}

// TestTwoNodesOverEtcd: two daemons over one etcd. A write through node A is seen through
// node B even though B had the old value cached (etcd's change feed refreshes it), versions
// are etcd revisions and keep increasing across nodes, and TTLs hold.
func TestTwoNodesOverEtcd(t *testing.T) {
	e := startEtcd(t, 1)
	a, b := startOnEtcd(t, e, "two"), startOnEtcd(t, e, "two")
	ca, cb := dialT(t, a.Addr().String()), dialT(t, b.Addr().String())
	ctx := pctest.Context(t)

	v1, err := ca.Set(ctx, "k", []byte("one"))
	require.NoError(t, err)
	it, err := cb.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "one", string(it.Value))
	assert.Equal(t, v1, it.Version)

	v2, err := ca.Set(ctx, "k", []byte("two")) // B has "one" cached
	require.NoError(t, err)
	assert.Greater(t, v2, v1)
	pctest.WaitFor(t, func() bool {
		it, err := cb.Get(ctx, "k")
		return err == nil && it.Version == v2 && string(it.Value) == "two"
	},
		"node B kept serving its stale copy")

	v3, err := cb.Set(ctx, "k", []byte("three"))
	require.NoError(t, err)
	assert.Greater(t, v3, v2, "versions increase across nodes")
	require.NoError(t, cb.Delete(ctx, "k"))
	pctest.WaitFor(t, func() bool { _, err := ca.Get(ctx, "k"); return err != nil }, "node A never saw the delete")
	_, err = ca.Get(ctx, "k")
	assert.ErrorIs(t, err, client.ErrNotFound)

	_, err = ca.Set(ctx, "ttl", []byte("x"), client.WithTTL(500*time.Millisecond))
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { _, err := cb.Get(ctx, "ttl"); return err != nil }, "the TTL never ended the key")
}

// TestEtcdctlWriteReachesSubscribers: a write made with etcdctl, not through any node, reaches
// a subscriber of a node, with its value and its etcd revision as version.
func TestEtcdctlWriteReachesSubscribers(t *testing.T) {
	e := startEtcd(t, 1)
	a := startOnEtcd(t, e, "ctl")
	c := dialT(t, a.Addr().String())
	ctx := pctest.Context(t)
	s, err := c.Subscribe(ctx, "room:", client.Prefix(), client.WithValues())
	require.NoError(t, err)

	// The record layout: 8 bytes of expiry (zeros: never), then the value; etcdctl reads the
	// value from standard input when it is not an argument.
	put := exec.Command("etcdctl", "--endpoints", e.clientURLs[0], "put", "/ctl/d/room:1")
	put.Stdin = strings.NewReader("\x00\x00\x00\x00\x00\x00\x00\x00hello")
	out, err := put.CombinedOutput()
	require.NoError(t, err, string(out))
	ev := next(t, s)
	assert.Equal(t, client.EventSet, ev.Kind)
	assert.Equal(t, "room:1", ev.Key)
	assert.Equal(t, "hello", string(ev.Value))
	it, err := c.Get(ctx, "room:1")
	require.NoError(t, err)
	assert.Equal(t, ev.Version, it.Version)

	out, err = exec.Command("etcdctl", "--endpoints", e.clientURLs[0], "del", "/ctl/d/room:1").CombinedOutput()
	require.NoError(t, err, string(out))
	ev = next(t, s)
	assert.Equal(t, client.EventDelete, ev.Kind)
	pctest.WaitFor(t, func() bool { _, err := c.Get(ctx, "room:1"); return err != nil }, "the cached copy outlived the delete")
}

// TestEtcdOneBadWriteNeverFailsItsGroup: a write etcd refuses alone (over its request limit)
// fails alone; large values are split into transactions etcd takes, so the others commit.
func TestEtcdOneBadWriteNeverFailsItsGroup(t *testing.T) {
	e := startEtcd(t, 1)
	st, err := nameservice.OpenEtcd(e.storeURL("bad"), 3*time.Second, nil)
	require.NoError(t, err)
	defer st.Close()
	big := make([]byte, 600<<10)
	ws := []nameservice.Write{
		{Key: "a", Record: nameservice.Record{Value: big}},
		{Key: "huge", Record: nameservice.Record{Value: make([]byte, 2<<20)}}, // over etcd's 1.5 MiB
		{Key: "b", Record: nameservice.Record{Value: big}},
		{Key: "c", Record: nameservice.Record{Value: big}},
	}
	require.NoError(t, st.Commit(ws))
	assert.ErrorIs(t, ws[1].Err, nameservice.ErrInvalid)
	for _, i := range []int{0, 2, 3} {
		assert.NoError(t, ws[i].Err)
		_, ok, err := st.Get(ws[i].Key, time.Now().UnixMilli())
		require.NoError(t, err)
		assert.True(t, ok, "%s not committed", ws[i].Key)
	}
}

// TestEtcdStoreBatchesAndScans: the store on its own: a commit of 300 writes (three etcd
// transactions), two writes of one key in one commit (never in one transaction), a scan.
func TestEtcdStoreBatchesAndScans(t *testing.T) {
	e := startEtcd(t, 1)
	st, err := nameservice.OpenEtcd(e.storeURL("batch"), 3*time.Second, nil)
	require.NoError(t, err)
	defer st.Close()
	var ws []nameservice.Write
	for i := range 300 {
		ws = append(ws, nameservice.Write{Key: fmt.Sprintf("b%03d", i), Record: nameservice.Record{Value: []byte("v")}})
	}
	ws = append(ws, nameservice.Write{Key: "b000", Record: nameservice.Record{Value: []byte("again")}})
	require.NoError(t, st.Commit(ws))
	assert.Greater(t, ws[300].Record.Version, ws[0].Record.Version, "the second write of a key came later")
	r, ok, err := st.Get("b000", time.Now().UnixMilli())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "again", string(r.Value))
	n := 0
	require.NoError(t, st.Scan("b", "", time.Now().UnixMilli(), func(string, nameservice.Record) bool { n++; return true }))
	assert.Equal(t, 300, n)
	maxV, err := st.MaxVersion()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, maxV, ws[300].Record.Version)
}

// BenchmarkEtcdCommit measures durable writes per second into a one-member etcd on this
// machine, one write per commit and 128 per commit (one transaction: what the daemon's group
// commit sends when writes pile up).
//
//	go test -run XXX -bench EtcdCommit ./tests/
func BenchmarkEtcdCommit(b *testing.B) {
	e := startEtcd(b, 1)
	st, err := nameservice.OpenEtcd(e.storeURL("bench"), 5*time.Second, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	value := make([]byte, 100)
	for _, batch := range []int{1, 128} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ws := make([]nameservice.Write, batch)
			n := 0
			for b.Loop() {
				for i := range ws {
					ws[i] = nameservice.Write{Key: fmt.Sprint("k", n%100_000), Record: nameservice.Record{Value: value}}
					n++
				}
				if err := st.Commit(ws); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// TestEtcdWatchAfterCompaction: a feed resuming from a revision etcd has compacted away says
// so (resync: changes were missed) and goes on from the compaction point.
func TestEtcdWatchAfterCompaction(t *testing.T) {
	e := startEtcd(t, 1)
	st, err := nameservice.OpenEtcd(e.storeURL("compact"), 3*time.Second, nil)
	require.NoError(t, err)
	defer st.Close()
	for i := range 3 {
		require.NoError(t, st.Commit([]nameservice.Write{{Key: fmt.Sprint("c", i), Record: nameservice.Record{Value: []byte("v")}}}))
	}
	rev, err := st.MaxVersion()
	require.NoError(t, err)
	ctx := pctest.Context(t)
	_, err = st.Client().Compact(ctx, int64(rev))
	require.NoError(t, err)

	type call struct {
		changes []nameservice.Change
		resync  bool
	}
	calls := make(chan call, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go st.Watch(wctx, 1, func(ch []nameservice.Change, resync bool) { calls <- call{ch, resync} })
	first := <-calls
	assert.True(t, first.resync, "resuming from a compacted revision must report a resync")
	require.NoError(t, st.Commit([]nameservice.Write{{Key: "after", Record: nameservice.Record{Value: []byte("new")}}}))
	// The feed goes on from the compaction point (the oldest revision etcd still has): nothing
	// older comes back, and the new write arrives.
	for c := range calls {
		for _, ch := range c.changes {
			assert.GreaterOrEqual(t, ch.Record.Version, rev, "a change older than the compaction came back")
			if ch.Key == "after" {
				assert.Equal(t, "new", string(ch.Record.Value))
				return
			}
		}
	}
}
