package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/buildinfo"
	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/transport"
)

// listenAdmin starts an admin endpoint on a free loopback port, shut down when the test ends.
func listenAdmin(tb testing.TB) *admin.Server {
	tb.Helper()
	srv, err := admin.Listen(admin.Config{Addr: "127.0.0.1:0", Build: buildinfo.Read(), Logger: pctest.Logger(tb)})
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, srv.Shutdown(context.Background())) })
	return srv
}

// startDaemon runs a daemon in this process with an admin endpoint, wired as pipecached does.
func startDaemon(tb testing.TB, cfg daemon.Config) (*daemon.Daemon, *admin.Server) {
	tb.Helper()
	srv := listenAdmin(tb)
	cfg.Outgoing.Observer = srv.StoreObserver()
	cfg.Cache.ExecObserver = srv.ExecObserver()
	d := testdaemon.Start(tb, cfg)
	srv.SetDaemon(d)
	return d, srv
}

func get(tb testing.TB, srv *admin.Server, path string) (int, string) {
	tb.Helper()
	resp, err := http.Get("http://" + srv.Addr().String() + path)
	require.NoError(tb, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return resp.StatusCode, string(body)
}

// scrape reads /metrics and parses the exposition as Prometheus would.
func scrape(tb testing.TB, srv *admin.Server) metrics {
	tb.Helper()
	code, body := get(tb, srv, "/metrics")
	require.Equal(tb, http.StatusOK, code, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(tb, err)
	return metrics(fams)
}

type metrics map[string]*dto.MetricFamily

// find returns the sample of family name whose labels include the given name=value pairs.
func (m metrics) find(tb testing.TB, name string, labels ...string) *dto.Metric {
	tb.Helper()
	fam, ok := m[name]
	require.True(tb, ok, "no metric %s", name)
	for _, s := range fam.Metric {
		if hasLabels(s, labels) {
			return s
		}
	}
	tb.Fatalf("no sample of %s with labels %v", name, labels)
	return nil
}

func hasLabels(s *dto.Metric, want []string) bool {
	have := map[string]string{}
	for _, l := range s.Label {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// value returns a counter's or gauge's value.
func (m metrics) value(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	s := m.find(tb, name, labels...)
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	tb.Fatalf("%s is neither a counter nor a gauge", name)
	return 0
}

func (m metrics) histogram(tb testing.TB, name string) *dto.Histogram {
	tb.Helper()
	h := m.find(tb, name).Histogram
	require.NotNil(tb, h, "%s is not a histogram", name)
	return h
}

// TestMetricsCountWhatClientsDo drives a daemon through the SDK and checks that the scraped
// counters moved by what was done.
func TestMetricsCountWhatClientsDo(t *testing.T) {
	d, srv := startDaemon(t, daemon.Config{Threads: 4, Cache: stages.CacheConfig{Memory: 64 << 20}})
	before := scrape(t, srv)
	ctx := pctest.Context(t)
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.Subscribe(ctx, "watched")
	require.NoError(t, err)

	const writes = 5
	for i := range writes {
		_, err := c.Set(ctx, fmt.Sprintf("k%d", i), []byte("value"))
		require.NoError(t, err)
	}
	_, err = c.Set(ctx, "watched", []byte("x"))
	require.NoError(t, err)
	select {
	case ev := <-sub.C:
		assert.Equal(t, "watched", ev.Key)
	case <-ctx.Done():
		t.Fatal("no push for the watched key")
	}
	_, err = c.Get(ctx, "k0") // a hit
	require.NoError(t, err)
	_, err = c.Get(ctx, "never-written") // a miss: a store load
	require.ErrorIs(t, err, client.ErrNotFound)

	after := scrape(t, srv)
	delta := func(name string, labels ...string) float64 {
		return after.value(t, name, labels...) - before.value(t, name, labels...)
	}
	assert.Equal(t, float64(writes+1), delta("pipecache_cache_sets_total"))
	assert.Equal(t, float64(writes+1), delta("pipecache_cache_store_writes_total"))
	assert.Equal(t, float64(1), delta("pipecache_cache_hits_total"))
	assert.Equal(t, float64(1), delta("pipecache_cache_misses_total"))
	assert.Equal(t, float64(1), delta("pipecache_cache_store_loads_total"))
	assert.Equal(t, float64(writes+2), after.value(t, "pipecache_cache_items"), "five keys, the watched one, and the absent one")
	assert.Positive(t, after.value(t, "pipecache_cache_bytes"))
	assert.Equal(t, float64(64<<20), after.value(t, "pipecache_cache_memory_budget_bytes"))

	// The store, measured as Outgoing calls it.
	commits := after.histogram(t, "pipecache_store_commit_writes")
	assert.Equal(t, float64(writes+1), commits.GetSampleSum(), "every write in some commit")
	assert.Positive(t, commits.GetSampleCount())
	assert.Equal(t, commits.GetSampleCount(), after.histogram(t, "pipecache_store_commit_duration_seconds").GetSampleCount())
	assert.Positive(t, after.histogram(t, "pipecache_store_commit_duration_seconds").GetSampleSum())
	assert.Equal(t, uint64(1), after.histogram(t, "pipecache_store_load_duration_seconds").GetSampleCount())
	assert.Zero(t, after.value(t, "pipecache_store_commit_errors_total"))

	// Sessions, conversations, the network.
	assert.Equal(t, float64(1), after.value(t, "pipecache_sessions"))
	assert.Equal(t, float64(1), after.value(t, "pipecache_subscriptions"))
	assert.Equal(t, float64(1), after.value(t, "pipecache_transport_conversations"))
	assert.Equal(t, float64(1), delta("pipecache_transport_conversations_opened_total"))
	assert.GreaterOrEqual(t, delta("pipecache_incoming_requests_total"), float64(writes+4), "hello, subscribe, sets, gets")
	for _, name := range []string{"received_datagrams", "sent_datagrams", "received_bytes", "sent_bytes"} {
		assert.Positive(t, delta("pipecache_transport_"+name+"_total"), name)
	}
	assert.Greater(t, delta("pipecache_transport_sent_bytes_total"), delta("pipecache_transport_sent_datagrams_total"))

	// Every loop, the stages it hosts, and their queues (one loop per stage: Threads 4).
	for _, stage := range []string{"incoming", "sessionmgr", "cacheprc", "outgoing"} {
		assert.Positive(t, delta("pipecache_loop_iterations_total", "loop", stage), stage)
		assert.Positive(t, delta("pipecache_loop_tasks_total", "loop", stage), stage)
		assert.Positive(t, after.value(t, "pipecache_loop_busy_seconds_total", "loop", stage), stage)
		assert.Zero(t, after.value(t, "pipecache_loop_panics_total", "loop", stage), stage)
		assert.Positive(t, delta("pipecache_stage_tasks_total", "stage", stage, "loop", stage), stage)
		assert.Zero(t, after.value(t, "pipecache_stage_panics_total", "stage", stage, "loop", stage), stage)
	}
	assert.GreaterOrEqual(t, delta("pipecache_queue_pushed_total", "stage", "cacheprc", "queue", "requests"), float64(writes+3))
	assert.Equal(t, float64(1<<14), after.value(t, "pipecache_queue_capacity", "stage", "cacheprc", "queue", "requests"))
	assert.Zero(t, after.value(t, "pipecache_queue_rejected_total", "stage", "cacheprc", "queue", "requests"))

	// The build, the runtime, readiness.
	info := after.find(t, "pipecache_build_info", "build", buildinfo.Read().String(), "goversion", buildinfo.Read().GoVersion)
	assert.Equal(t, float64(1), info.Gauge.GetValue())
	assert.Equal(t, float64(1), after.value(t, "pipecache_ready"))
	assert.Positive(t, after.value(t, "go_goroutines"))
	assert.Positive(t, after.value(t, "process_resident_memory_bytes"))
}

// TestMetricsSayWhichLoopRunsEachStage: under a mapping where loops host several stages
// (-threads 2, and 1), each loop's metrics are labelled with the stages it hosts, and each stage's
// with its own name and its loop's.
func TestMetricsSayWhichLoopRunsEachStage(t *testing.T) {
	for threads, hosts := range map[int]map[string]string{
		1: {"incoming": "incoming+sessionmgr+cacheprc+outgoing", "sessionmgr": "incoming+sessionmgr+cacheprc+outgoing",
			"cacheprc": "incoming+sessionmgr+cacheprc+outgoing", "outgoing": "incoming+sessionmgr+cacheprc+outgoing"},
		2: {"incoming": "incoming+sessionmgr", "sessionmgr": "incoming+sessionmgr", "cacheprc": "cacheprc+outgoing", "outgoing": "cacheprc+outgoing"},
	} {
		d, srv := startDaemon(t, daemon.Config{Threads: threads})
		ctx := pctest.Context(t)
		c, err := client.Dial(d.Addr().String())
		require.NoError(t, err)
		_, err = c.Get(ctx, "absent") // a miss: every stage has a task (Outgoing a load)
		require.ErrorIs(t, err, client.ErrNotFound)
		c.Close()
		m := scrape(t, srv)
		for stage, loopName := range hosts {
			assert.Positive(t, m.value(t, "pipecache_stage_tasks_total", "stage", stage, "loop", loopName), "-threads %d: %s", threads, stage)
			assert.Positive(t, m.value(t, "pipecache_loop_iterations_total", "loop", loopName), "-threads %d: %s", threads, loopName)
		}
	}
}

// TestFsyncModeInMetrics: /metrics says which durability the store was started with.
func TestFsyncModeInMetrics(t *testing.T) {
	for _, mode := range []nameservice.Fsync{nameservice.FsyncAlways, nameservice.FsyncEverySec, nameservice.FsyncNo} {
		_, srv := startDaemon(t, daemon.Config{Fsync: mode})
		m := scrape(t, srv)
		assert.Equal(t, float64(1), m.value(t, "pipecache_store_fsync_info", "mode", mode.String()))
		assert.Len(t, m["pipecache_store_fsync_info"].Metric, 1)
	}
}

// TestMetricNamesFollowConventions: counters end in _total, nothing else does, and every
// pipecache metric has help text.
func TestMetricNamesFollowConventions(t *testing.T) {
	_, srv := startDaemon(t, daemon.Config{})
	n := 0
	for name, fam := range scrape(t, srv) {
		if !strings.HasPrefix(name, "pipecache_") {
			continue
		}
		n++
		assert.NotEmpty(t, fam.GetHelp(), name)
		isCounter := fam.GetType() == dto.MetricType_COUNTER
		assert.Equal(t, isCounter, strings.HasSuffix(name, "_total"), "%s: counter %v", name, isCounter)
		assert.NotContains(t, name, "_ms", "%s: base units are seconds", name)
	}
	assert.Greater(t, n, 60, "pipecache metrics exposed")
}

func TestHealthzReadyzAndPprof(t *testing.T) {
	srv := listenAdmin(t)
	code, body := get(t, srv, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, body = get(t, srv, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "no daemon yet")
	assert.Contains(t, body, "starting")
	m := scrape(t, srv)
	assert.Equal(t, float64(1), m.value(t, "pipecache_build_info"))
	assert.NotContains(t, m, "pipecache_cache_gets_total", "no daemon counters before the daemon")

	code, body = get(t, srv, "/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")
	code, _ = get(t, srv, "/debug/pprof/goroutine?debug=1")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, srv, "/nothing-here")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestReadyzSaysStoppingOnceTheDaemonStops(t *testing.T) {
	d, srv := startDaemon(t, daemon.Config{})
	code, _ := get(t, srv, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, d.Stop(pctest.Context(t)))
	code, body := get(t, srv, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "stopping")
	code, _ = get(t, srv, "/healthz")
	assert.Equal(t, http.StatusOK, code)
}

func TestListenRefusesABadAddress(t *testing.T) {
	srv := listenAdmin(t)
	_, err := admin.Listen(admin.Config{Addr: srv.Addr().String()})
	assert.ErrorIs(t, err, admin.ErrServer, "address in use")
	_, err = admin.Listen(admin.Config{Addr: "127.0.0.1:http-nope"})
	assert.ErrorIs(t, err, admin.ErrServer)
}

// BenchmarkScrape measures one /metrics scrape of a running daemon, HTTP included.
func BenchmarkScrape(b *testing.B) {
	_, srv := startDaemon(b, daemon.Config{})
	url := "http://" + srv.Addr().String() + "/metrics"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestEveryCounterIsExported fails when a stage publishes a counter that /metrics does not
// show: each field of the stats structs must be listed here with its metric.
func TestEveryCounterIsExported(t *testing.T) {
	metricOf := map[string]string{
		"Transport.DatagramsIn": "pipecache_transport_received_datagrams_total", "Transport.DatagramsOut": "pipecache_transport_sent_datagrams_total",
		"Transport.BytesIn": "pipecache_transport_received_bytes_total", "Transport.BytesOut": "pipecache_transport_sent_bytes_total",
		"Transport.Malformed": "pipecache_transport_malformed_datagrams_total", "Transport.Refused": "pipecache_transport_refused_datagrams_total",
		"Transport.NotStart": "pipecache_transport_not_start_datagrams_total", "Transport.Evicted": "pipecache_transport_pending_evicted_total",
		"Transport.AmplificationDropped": "pipecache_transport_amplification_dropped_datagrams_total",
		"Transport.Validated":            "pipecache_transport_validated_total",
		"Transport.Unauthenticated":      "pipecache_transport_unauthenticated_datagrams_total",

		"Transport.Resets":      "pipecache_transport_resets_total",
		"Transport.SendDropped": "pipecache_transport_send_dropped_datagrams_total", "Transport.SendBlocked": "pipecache_transport_send_blocked_total",
		"Transport.Conns": "pipecache_transport_conversations", "Transport.Pending": "pipecache_transport_pending_conversations",
		"Transport.Idle": "pipecache_transport_idle_conversations", "Transport.Compactions": "pipecache_transport_compactions_total",
		"Transport.Opened": "pipecache_transport_conversations_opened_total", "Transport.Closed": "pipecache_transport_conversations_closed_total",
		"Requests": "pipecache_incoming_requests_total", "BadFrames": "pipecache_incoming_bad_frames_total",
		"Busy": "pipecache_incoming_busy_total", "RepliesDropped": "pipecache_incoming_replies_dropped_total",
		"Transport.Resends": "pipecache_transport_resends_total", "Transport.Backoffs": "pipecache_transport_retransmit_backoffs_total",
		"Transport.ChecksDeferred": "pipecache_transport_retransmit_deferred_total",
		"Transport.ShedNew":        "pipecache_transport_shed_new_datagrams_total", "Transport.BehindSpells": "pipecache_transport_behind_total",
		"Sessions": "pipecache_sessions", "Expired": "pipecache_sessions_expired_total", "Refused": "pipecache_sessions_refused_total",
		"Subscriptions": "pipecache_subscriptions", "PushesDropped": "pipecache_push_dropped_total", "Resyncs": "pipecache_push_resyncs_total",
		"Held": "pipecache_push_held_total", "Coalesced": "pipecache_push_coalesced_total",
		"ValuesDropped": "pipecache_push_values_dropped_total", "PushBytes": "pipecache_push_value_bytes",
		"Gets": "pipecache_cache_gets_total", "Hits": "pipecache_cache_hits_total", "Misses": "pipecache_cache_misses_total",
		"NegativeHits": "pipecache_cache_negative_hits_total", "Sets": "pipecache_cache_sets_total", "Deletes": "pipecache_cache_deletes_total",
		"Loads": "pipecache_cache_store_loads_total", "Stores": "pipecache_cache_store_writes_total", "Evictions": "pipecache_cache_evictions_total",
		"Expirations": "pipecache_cache_expirations_total", "Timeouts": "pipecache_cache_store_timeouts_total",
		"Foreign": "pipecache_cache_foreign_changes_total", "StaleReads": "pipecache_cache_stale_reads_total",
		"Unreachable": "pipecache_store_unreachable", "Items": "pipecache_cache_items", "Bytes": "pipecache_cache_bytes",
		"Execs": "pipecache_exec_total", "ExecUnknown": "pipecache_exec_errors_total", "ExecBadArgs": "pipecache_exec_errors_total",
		"ExecWrongType": "pipecache_exec_errors_total", "ExecTooLarge": "pipecache_exec_errors_total",
		"ExecOverBudget": "pipecache_exec_errors_total", "ExecInternal": "pipecache_exec_errors_total",
		"ExecNanos":       "pipecache_exec_seconds_total",
		"Loop.Iterations": "pipecache_loop_iterations_total", "Loop.Sleeps": "pipecache_loop_sleeps_total", "Loop.Tasks": "pipecache_loop_tasks_total",
		"Loop.Panics": "pipecache_loop_panics_total", "Loop.Busy": "pipecache_loop_busy_seconds_total", "Loop.Timers": "pipecache_loop_timers",
		"Stage.Tasks": "pipecache_stage_tasks_total", "Stage.Panics": "pipecache_stage_panics_total",
		"Queue.Len": "pipecache_queue_length", "Queue.Cap": "pipecache_queue_capacity", "Queue.Pushed": "pipecache_queue_pushed_total",
		"Queue.Rejected": "pipecache_queue_rejected_total", "Queue.Wakeups": "pipecache_queue_wakeups_total",
		"Queue.Wait":   "pipecache_queue_wait_seconds",
		"Requests.Ops": "pipecache_request_duration_seconds", "Requests.Slow": "pipecache_slow_requests_total",
		"Op.Duration": "pipecache_request_duration_seconds", "Op.Replies": "pipecache_replies_total",
	}
	// Not metrics of their own: names, derived values, and the nested structs walked below.
	skip := map[string]bool{"Transport": true, "Loop.Name": true, "Loop.Uptime": true, "Loop.Utilisation": true,
		"Loop.Queues": true, "Loop.Stages": true, "Stage.Name": true, "Stage.Loop": true, "Stage.Queues": true, "Queue.Name": true, "Op.Op": true}
	d, srv := startDaemon(t, daemon.Config{})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Ping(pctest.Context(t))) // a request, so that there are request metrics
	m := scrape(t, srv)
	check := func(prefix string, v any) {
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			field := prefix + rt.Field(i).Name
			if skip[field] {
				continue
			}
			name, ok := metricOf[field]
			if assert.True(t, ok, "%s (%s) has no metric: add it to the collector and here", field, rt) {
				assert.Contains(t, m, name, field)
			}
		}
	}
	check("Transport.", transport.Stats{})
	check("", stages.IncomingStats{})
	check("", stages.SessionStats{})
	check("", stages.CacheStats{})
	check("Loop.", loop.Stats{})
	check("Stage.", loop.StageStats{})
	check("Queue.", loop.QueueStats{})
	check("Requests.", stages.RequestStats{})
	check("Op.", stages.OpRequests{})
}
