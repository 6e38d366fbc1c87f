package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/processor"
)

// zincrRun runs n zincr updates on one board with 8 workers and returns the result.
func zincrRun(t *testing.T, server, addr, prefix string, cas bool, n int64) Result {
	t.Helper()
	d, err := Open(server, addr, Options{Sessions: 4})
	require.NoError(t, err)
	defer d.Close()
	res, err := Run(context.Background(), Config{Server: server, Addr: addr, Sessions: 4, InFlight: 2, Mix: "zincr=1",
		Keys: 1, Members: 5, Dist: "uniform", Requests: n, Prefix: prefix, ZIncrCAS: cas}, d, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Errors)
	assert.Equal(t, n, res.Ops)
	return res
}

// TestZIncrLosesNoUpdate: by exec and by CAS retried, on pipecache and on Redis, every one of
// the updates of a hot board is in its scores at the end.
func TestZIncrLosesNoUpdate(t *testing.T) {
	const n = 400
	d := testdaemon.Start(t, daemon.Config{})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	for _, cas := range []bool{false, true} {
		prefix := map[bool]string{false: "exec:", true: "cas:"}[cas]
		res := zincrRun(t, "pipecache", d.Addr().String(), prefix, cas, n)
		it, err := c.Get(context.Background(), boardKey(prefix, 0))
		require.NoError(t, err)
		members, err := processor.DecodeZSet(it.Value)
		require.NoError(t, err)
		assert.Equal(t, float64(n), sumScores(members), "cas %v", cas)
		if !cas {
			assert.Zero(t, res.Conflicts, "exec never conflicts")
		}
		t.Logf("cas %v: %d conflicts for %d updates", cas, res.Conflicts, n)
	}

	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	addr := startServer(t, "redis")
	zincrRun(t, "redis", addr, "r:", false, n)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	zs, err := rc.ZRangeWithScores(context.Background(), boardKey("r:", 0), 0, -1).Result()
	require.NoError(t, err)
	var sum float64
	for _, z := range zs {
		sum += z.Score
	}
	assert.Equal(t, float64(n), sum)
}

func sumScores(members []processor.Member) float64 {
	var s float64
	for _, m := range members {
		s += m.Score
	}
	return s
}

func TestZIncrRefusedWhereItCannotRun(t *testing.T) {
	for _, tt := range []struct {
		server string
		cas    bool
	}{{"memcached", false}, {"redis", true}} {
		cfg := Config{Server: tt.server, Sessions: 1, InFlight: 1, Mix: "get=1,zincr=1", Keys: 1, Dist: "uniform",
			Requests: 1, ZIncrCAS: tt.cas}
		assert.ErrorIs(t, cfg.validate(), errNoZIncr, "%+v", tt)
	}
	cfg := Config{Server: "memcached", Sessions: 1, InFlight: 1, Mix: "get=1", Keys: 1, Dist: "uniform", Requests: 1}
	assert.NoError(t, cfg.validate(), "no zincr in the mix: nothing to refuse")
}

func TestSummarizeCountsLostRaces(t *testing.T) {
	results := []Labelled{
		{Workload: "zincr", Result: Result{Server: "pipecache", Ops: 100, OpsPerSec: 10}},
		{Workload: "zincr", Result: Result{Server: "pipecache-cas", Ops: 100, OpsPerSec: 5, Conflicts: 250}},
	}
	var b strings.Builder
	Summarize(&b, results)
	assert.Contains(t, b.String(), "Lost CAS races per operation (each one more round trip or two): pipecache-cas 2.50")
	assert.NotContains(t, b.String(), "pipecache 0", "no note for a server that lost none")
}
