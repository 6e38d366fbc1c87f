package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics measures the store as Outgoing calls it (it is a stages.StoreObserver): how long
// each load and commit took, how many writes each commit grouped, and how many failed. These
// are the only metrics measured as they happen rather than read from the stages' counters,
// because a latency distribution cannot be rebuilt from totals.
type storeMetrics struct {
	loadSeconds, commitSeconds, commitWrites prometheus.Histogram
	loadErrors, commitErrors                 prometheus.Counter
}

// latencyBuckets span an in-memory read (tens of µs) to a store at its time-out (seconds).
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}

func newStoreMetrics() *storeMetrics {
	return &storeMetrics{
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipecache_store_load_duration_seconds", Help: "Time the store took to answer a load (a cache miss).",
			Buckets: latencyBuckets}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipecache_store_commit_duration_seconds", Help: "Time the store took to commit a group of writes durably.",
			Buckets: latencyBuckets}),
		commitWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipecache_store_commit_writes", Help: "Writes per store commit (the group commit's batch size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}), // 1 .. 1024, Outgoing's largest batch
		loadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipecache_store_load_errors_total", Help: "Store loads that failed (answered 'unavailable')."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipecache_store_commit_errors_total", Help: "Store commits that failed (their writes answered 'unavailable')."}),
	}
}

func (m *storeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.loadSeconds, m.commitSeconds, m.commitWrites, m.loadErrors, m.commitErrors}
}

// ObserveLoad implements stages.StoreObserver.
func (m *storeMetrics) ObserveLoad(took time.Duration, err error) {
	m.loadSeconds.Observe(took.Seconds())
	if err != nil {
		m.loadErrors.Inc()
	}
}

// ObserveCommit implements stages.StoreObserver.
func (m *storeMetrics) ObserveCommit(writes int, took time.Duration, err error) {
	m.commitSeconds.Observe(took.Seconds())
	m.commitWrites.Observe(float64(writes))
	if err != nil {
		m.commitErrors.Inc()
	}
}
