package tests

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/client/etcdnodes"
	"github.com/pipecache/pipecache/internal/pctest"
)

// BenchmarkDeadNodeNotice measures how long a three-node cluster takes to notice a node killed
// with SIGKILL, with the SDK's defaults (attempt timeout 1 s, heartbeat 1 s, dead after 5 s):
//
//   - failover-ms: until a write of one of the dead node's keys succeeds again (the request
//     times out on the dead node once, then goes to the key's next node);
//
//   - leave-ms: until the member set in etcd, as the Cluster client sees it, drops the node
//     (its lease expires: -member-ttl).
//
//     CI=1 go test -run XXX -bench DeadNodeNotice -benchtime 3x ./tests/
func BenchmarkDeadNodeNotice(b *testing.B) {
	e := startEtcd(b, 1)
	bin := buildDaemon(b)
	for _, ttl := range []time.Duration{2 * time.Second, 5 * time.Second} {
		b.Run(fmt.Sprint("member-ttl=", ttl), func(b *testing.B) {
			var failover, leave time.Duration
			round := 0
			for b.Loop() {
				round++
				url := e.storeURL(fmt.Sprintf("notice%d-%d", ttl/time.Second, round))
				var ds []*daemon
				for range 3 {
					ds = append(ds, startDaemon(b, bin, "-store", url, "-member-ttl", ttl.String()))
				}
				ctx := pctest.Context(b)
				cl, err := client.DialCluster(ctx, etcdnodes.New(url))
				if err != nil {
					b.Fatal(err)
				}
				pctest.WaitFor(b, func() bool { return len(cl.Nodes()) == 3 }, "three nodes never registered")
				key := ""
				for i := 0; key == ""; i++ {
					if k := fmt.Sprint("k", i); cl.Owner(k) == ds[0].addr {
						key = k
					}
				}
				if _, err := cl.Set(ctx, key, []byte("before")); err != nil {
					b.Fatal(err)
				}
				ds[0].cmd.Process.Kill()
				killed := time.Now()
				for {
					if _, err := cl.Set(ctx, key, []byte("after")); err == nil {
						break
					}
				}
				failover += time.Since(killed)
				pctest.WaitFor(b, func() bool { return len(cl.Nodes()) == 2 }, "the dead node never left")
				leave += time.Since(killed)
				cl.Close()
				for _, d := range ds[1:] {
					d.stop(b, syscall.SIGTERM)
				}
			}
			b.ReportMetric(float64(failover.Milliseconds())/float64(round), "failover-ms")
			b.ReportMetric(float64(leave.Milliseconds())/float64(round), "leave-ms")
		})
	}
}
