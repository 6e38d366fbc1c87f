package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const sampleMetrics = `# HELP pipecache_transport_received_datagrams_total UDP datagrams received.
# TYPE pipecache_transport_received_datagrams_total counter
pipecache_transport_received_datagrams_total 1500
# TYPE pipecache_transport_sent_datagrams_total counter
pipecache_transport_sent_datagrams_total 1200
# TYPE pipecache_queue_wakeups_total counter
pipecache_queue_wakeups_total{queue="incoming->cache"} 300
pipecache_queue_wakeups_total{queue="cache->incoming"} 200
# TYPE pipecache_sessions gauge
pipecache_sessions 50
`

func TestParseCounters(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       serverCounters
		wantErr    string
	}{
		{"all there, labels summed", sampleMetrics, serverCounters{in: 1500, out: 1200, wakeups: 500}, ""},
		{"a family missing", strings.ReplaceAll(sampleMetrics, "pipecache_queue_wakeups_total", "other_total"), serverCounters{}, "no pipecache_queue_wakeups_total"},
		{"not the text format", "pipecache_transport_received_datagrams_total {", serverCounters{}, "metrics:"},
		{"empty", "", serverCounters{}, "no pipecache_transport_received_datagrams_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCounters(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestScrapeCounters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, sampleMetrics)
	}))
	defer srv.Close()
	got, err := scrapeCounters(context.Background(), srv.URL+"/metrics")
	require.NoError(t, err)
	assert.Equal(t, serverCounters{in: 1500, out: 1200, wakeups: 500}, got)
	_, err = scrapeCounters(context.Background(), srv.URL+"/nothing")
	assert.ErrorContains(t, err, "404")
}

func FuzzParseCounters(f *testing.F) {
	f.Add(sampleMetrics)
	f.Add("")
	f.Add("# TYPE x counter\nx{a=\"1\"} 1e400\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseCounters(strings.NewReader(text))
		if err != nil {
			assert.Zero(t, c, "no figures with an error")
		}
	})
}

func FuzzReadResults(f *testing.F) {
	b, _ := json.Marshal(Labelled{Workload: "w", Result: Result{Server: "pipecache", Ops: 3, Errors: map[string]int64{"timeout": 1}},
		Loss: &LossCheck{Pattern: "5%", Random: 5, Seen: 100, Dropped: 5}})
	f.Add(string(b) + "\n\n" + string(b))
	f.Add("{")
	f.Add(`{"loss":null}`)
	f.Fuzz(func(t *testing.T, text string) {
		results, err := ReadResults(strings.NewReader(text))
		if err != nil {
			return
		}
		// Whatever decoded can be printed.
		var out bytes.Buffer
		Summarize(&out, results)
		SummarizeLoss(&out, results)
	})
}

func TestLossCheckConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    LossCheck
		want bool
	}{
		{"0%, nothing dropped", LossCheck{Random: 0, Seen: 10_000}, true},
		{"0%, something dropped", LossCheck{Random: 0, Seen: 10_000, Dropped: 1}, false},
		{"5% at 5.02%", LossCheck{Random: 5, Seen: 100_000, Dropped: 5020}, true},
		{"5% at 4%", LossCheck{Random: 5, Seen: 100_000, Dropped: 4000}, false},
		{"5% with nothing dropped", LossCheck{Random: 5, Seen: 100_000}, false},
		{"1% over few packets, within 4 sigma", LossCheck{Random: 1, Seen: 1000, Dropped: 20}, true},
		{"too few packets to say", LossCheck{Random: 1, Seen: 99, Dropped: 1}, false},
		{"bursts that dropped", LossCheck{Burst: true, Bursts: 4, Seen: 10_000, Dropped: 700}, true},
		{"bursts that dropped nothing", LossCheck{Burst: true, Bursts: 4, Seen: 10_000}, false},
		{"no burst during the run", LossCheck{Burst: true, Seen: 10_000, Dropped: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tc.l.Confirmed()) })
	}
}

func TestSummarizeLoss(t *testing.T) {
	var results []Labelled
	add := func(server, pattern string, inFlight int, ops float64, p99, p999 int64, l LossCheck) {
		l.Pattern = pattern
		results = append(results, Labelled{Workload: pattern, Loss: &l, Result: Result{Server: server, InFlight: inFlight,
			OpsPerSec: ops, P99: p99, P999: p999, Errors: map[string]int64{"timeout": 1}, DialRetries: 2, SessionsLost: 1}})
	}
	for round := range 2 {
		add("redis", "0%", 1, 30000+float64(round), 6000, 17000, LossCheck{Seen: 1000})
		add("pipecache", "0%", 1, 14000, 11000, 20000, LossCheck{Seen: 1000})
		add("pipecache", "5%", 16, 30800, 77000, 151_000, LossCheck{Random: 5, Seen: 100_000, Dropped: 5000})
		add("redis", "5%", 16, 2000, 671_000, 935_000, LossCheck{Random: 5, Seen: 100_000, Dropped: 3000})
		add("pipecache", "bursts", 1, 9000, 26000, 311_000, LossCheck{Burst: true, Bursts: 4, Seen: 10_000, Dropped: 100})
	}
	var out bytes.Buffer
	SummarizeLoss(&out, results)
	s := out.String()
	assert.Contains(t, s, "| loss | in flight | nft drops seen | pipecache ops/s | pipecache p99 / p99.9 ms | redis ops/s |")
	assert.Contains(t, s, "| 0% | 1 | 0.00% of 4000, ok | 14000 | 11.0 / 20.0 | 30001 | 6.0 / 17.0 | 2 / 4 / 2 | 2 / 4 / 2 |")
	assert.Contains(t, s, "| 5% | 16 | 4.00% of 400000, NOT CONFIRMED | 30800 | 77.0 / 151 | 2000 | 671 / 935 |")
	assert.Contains(t, s, "| bursts | 1 | 1.00% of 20000 in 8 bursts, ok | 9000 | 26.0 / 311 | - | - | 2 / 4 / 2 | - |")
	assert.Contains(t, s, "did NOT confirm the rule of 2 runs: 5%, 16 in flight, redis: 3.00% of 100000 packets")
}

func TestSummarizeNamesAndCosts(t *testing.T) {
	results := []Labelled{
		{Workload: "w", Result: Result{Server: "redis-aof", OpsPerSec: 5000, ServerCPU: 20, ClientCPU: 15}},
		{Workload: "w", Result: Result{Server: "pipecache", OpsPerSec: 10000, ServerCPU: 30, ServerSwitches: 0.25, ClientCPU: 40,
			DatagramsIn: 2, DatagramsOut: 1.5, Wakeups: 2.25, Errors: map[string]int64{"timeout": 3}}},
	}
	var out bytes.Buffer
	Summarize(&out, results)
	s := out.String()
	assert.Less(t, strings.Index(s, "| pipecache |"), strings.Index(s, "| redis-aof |"), "pipecache first")
	assert.Contains(t, s, "| pipecache | 1 | 10000 | 0 | 0 | 30.0 | 0.25 | 40.0 | 2.00 / 1.50 | 2.25 | 3 | 0 | - |")
	assert.Contains(t, s, "| redis-aof | 1 | 5000 | 0 | 0 | 20.0 | - | 15.0 | - | - | 0 | 0 | 2.00 |")
}

func TestReportSaysConnectionsAndCosts(t *testing.T) {
	var out bytes.Buffer
	Report(&out, []Result{{Server: "pipecache", Seconds: 1, Shared: true, SessionsUp: 1, DialRetries: 3, SessionsLost: 2,
		ClientCPU: 12.5, ServerSwitches: 0.125, DatagramsIn: 1.5, DatagramsOut: 1.5, Wakeups: 2, Warnings: []string{"server counters: refused"}}})
	s := out.String()
	assert.Contains(t, s, "pipecache: one client shared by every worker; 1 sessions connected, 3 dial retries, 0 dial failures, 2 sessions lost after connecting")
	assert.Contains(t, s, "load generator CPU 12.5 µs")
	assert.Contains(t, s, "server context switches 0.12")
	assert.Contains(t, s, "server datagrams 1.50 in, 1.50 out; 2.00 stage wake-ups")
	assert.Contains(t, s, "not measured: server counters: refused")
}

// TestProcessSwitchesCountsEveryThread: the context switches of a thread that is not the
// process's first are counted: a locked thread that blocks 20 times switches out at least 20
// times, and the process's count is at least its and the first thread's together.
func TestProcessSwitchesCountsEveryThread(t *testing.T) {
	assert.Equal(t, int64(-1), processSwitches(0))
	tid, release := make(chan int), make(chan struct{})
	go func() {
		runtime.LockOSThread() // a thread of its own, never unlocked: it exits with the goroutine
		for range 20 {
			time.Sleep(time.Millisecond) // the thread blocks in the kernel: a voluntary switch
		}
		tid <- unix.Gettid()
		<-release // the thread lives until it has been counted
	}()
	defer close(release)
	pid := os.Getpid()
	threadSwitches := func(tid int) int64 {
		p, err := procfs.NewProc(pid)
		require.NoError(t, err)
		th, err := p.Thread(tid)
		require.NoError(t, err)
		st, err := th.NewStatus()
		require.NoError(t, err)
		return int64(st.TotalCtxtSwitches())
	}
	locked := threadSwitches(<-tid)
	assert.GreaterOrEqual(t, locked, int64(20))
	first := threadSwitches(pid)
	assert.GreaterOrEqual(t, processSwitches(pid), locked+first) // counts only grow
}

// TestSummarizeComparesEveryVariant: with several pipecached variants (compare.sh's THREADS),
// they come first, in name order, and each is compared with every other server.
func TestSummarizeComparesEveryVariant(t *testing.T) {
	results := []Labelled{
		{Workload: "w", Result: Result{Server: "redis", OpsPerSec: 4000}},
		{Workload: "w", Result: Result{Server: "pipecache-t2", OpsPerSec: 6000}},
		{Workload: "w", Result: Result{Server: "memcached", OpsPerSec: 5000}},
		{Workload: "w", Result: Result{Server: "pipecache-t1", OpsPerSec: 5000}},
	}
	var out bytes.Buffer
	Summarize(&out, results)
	s := out.String()
	order := []int{strings.Index(s, "| pipecache-t1 |"), strings.Index(s, "| pipecache-t2 |"), strings.Index(s, "| redis |"), strings.Index(s, "| memcached |")}
	assert.IsIncreasing(t, order, s)
	assert.Contains(t, s, "ops/s against the others: pipecache-t1: 1.25x redis, 1.00x memcached; pipecache-t2: 1.50x redis, 1.20x memcached")
}
