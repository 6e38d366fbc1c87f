package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

func TestParseMix(t *testing.T) {
	cum, err := parseMix("get=90,set=10")
	require.NoError(t, err)
	assert.Equal(t, 90, cum[opGet])
	assert.Equal(t, 100, cum[numOps-1])
	for _, bad := range []string{"get", "get=x", "fly=1", "get=0", "get=-1"} {
		_, err := parseMix(bad)
		assert.Error(t, err, bad)
	}
	rng := rand.New(rand.NewSource(1))
	counts := map[op]int{}
	for range 10000 {
		counts[pickOp(rng, cum)]++
	}
	assert.InDelta(t, 9000, counts[opGet], 300)
	assert.InDelta(t, 1000, counts[opSet], 300)
}

func TestZipfIsSkewedAndUniformIsNot(t *testing.T) {
	hits := func(dist string) int {
		k := newKeyChooser(&Config{Keys: 1000, Dist: dist, ZipfS: 1.1}, 1)
		n := 0
		for range 10000 {
			if k.next() < 10 {
				n++
			}
		}
		return n
	}
	assert.Less(t, hits("uniform"), 300, "uniform: the first 1% of keys get about 1% of requests")
	assert.Greater(t, hits("zipf"), 3000, "zipf: the first 1% of keys get most requests")
}

// TestRunAgainstPipecache runs a short mixed workload against an in-process daemon and checks
// the result adds up.
func TestRunAgainstPipecache(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{})
	res := runShort(t, "pipecache", d.Addr().String(), false)
	assert.Empty(t, res.Errors)
	assert.Zero(t, res.Misses, "every key was preloaded")
	assert.Equal(t, 4, res.SessionsUp)

	// With subscribers, every measured set, incr (counters are not under the key prefix, so
	// not those) and cas reaches them.
	dr, err := Open("pipecache", d.Addr().String(), Options{Sessions: 2})
	require.NoError(t, err)
	defer dr.Close()
	sres, err := Run(context.Background(), Config{Server: "pipecache", Addr: d.Addr().String(), Sessions: 2, InFlight: 1,
		Mix: "set=1", Keys: 50, Dist: "uniform", Value: 8, Requests: 200, Prefix: "s:", Subscribers: 3}, dr, nil)
	require.NoError(t, err)
	assert.Empty(t, sres.Errors)
	assert.Positive(t, sres.Pushes, "subscribers received no pushes")
	assert.LessOrEqual(t, sres.Pushes, int64(3*200))
	_, cs := d.Stats()
	assert.Positive(t, cs.Gets)

	// With a near cache, gets of a small, preloaded key space are answered locally.
	nd, err := Open("pipecache", d.Addr().String(), Options{Sessions: 2, NearCache: 100})
	require.NoError(t, err)
	defer nd.Close()
	nres, err := Run(context.Background(), Config{Server: "pipecache", Addr: d.Addr().String(), Sessions: 2, InFlight: 1,
		Mix: "get=1", Keys: 20, Dist: "uniform", Value: 8, Duration: 4 * time.Second, Preload: true, Prefix: "n:", NearCache: 100}, nd, nil)
	require.NoError(t, err)
	assert.Empty(t, nres.Errors)
	assert.Positive(t, nres.NearHits, "no get was answered by the near cache")
	assert.LessOrEqual(t, nres.NearHits, nres.Ops)

	_, err = Open("redis", "127.0.0.1:1", Options{Sessions: 1, NearCache: 10})
	assert.ErrorContains(t, err, "near cache")
}

// TestRunAgainstRedisAndMemcached drives the other two servers with the same workload when their
// binaries are installed (.ci/run installs them).
func TestRunAgainstRedisAndMemcached(t *testing.T) {
	for _, server := range []string{"redis", "memcached"} {
		t.Run(server, func(t *testing.T) {
			bin := map[string]string{"redis": "redis-server", "memcached": "memcached"}[server]
			if _, err := exec.LookPath(bin); err != nil {
				t.Skipf("%s not installed", bin)
			}
			addr := startServer(t, server)
			for _, shared := range []bool{false, true} {
				res := runShort(t, server, addr, shared)
				assert.Empty(t, res.Errors)
				assert.Equal(t, shared, res.Shared)
				assert.Equal(t, 4, res.SessionsUp, "the pool's size")
			}
		})
	}
}

func runShort(t *testing.T, server, addr string, shared bool) Result {
	t.Helper()
	d, err := Open(server, addr, Options{Sessions: 4, Shared: shared})
	require.NoError(t, err)
	defer d.Close()
	var progress bytes.Buffer
	cfg := Config{Server: server, Addr: addr, Sessions: 4, InFlight: 2, Mix: "get=60,set=10,mget=10,incr=10,cas=10",
		Keys: 200, Dist: "zipf", ZipfS: 1.2, Value: 64, Requests: 2000, Preload: true, Prefix: "t:", Shared: shared}
	res, err := Run(context.Background(), cfg, d, &progress)
	require.NoError(t, err)
	assert.Equal(t, int64(2000), res.Ops)
	assert.Positive(t, res.OpsPerSec)
	assert.Positive(t, res.ClientCPU, "the load generator's own CPU per op")
	assert.Zero(t, res.DialRetries+res.DialFailures+res.SessionsLost)
	assert.LessOrEqual(t, res.P50, res.P99)
	assert.LessOrEqual(t, res.P99, res.Max)
	b, err := json.Marshal(Labelled{Workload: "w", Result: res})
	require.NoError(t, err)
	back, err := ReadResults(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, res.Ops, back[0].Ops)
	var table bytes.Buffer
	Summarize(&table, back)
	assert.Contains(t, table.String(), "| "+server+" | 1 |")
	return res
}

// startServer runs redis-server or memcached on a free loopback port until the test ends.
func startServer(t *testing.T, server string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var cmd *exec.Cmd
	switch server {
	case "redis":
		cmd = exec.Command("redis-server", "--port", itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	default:
		cmd = exec.Command("memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", itoa(port), "-U", "0")
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v", server, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
