package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// execMetrics measures processor calls as CachePrc makes them (it is a stages.ExecObserver):
// a histogram of the time each call held CachePrc's loop. The calls and their errors are
// counters of the stage's, exported by the collector.
type execMetrics struct {
	seconds prometheus.Histogram
}

// execBuckets span a read of a small value (under a µs) to a call far over the default time
// budget of 10 ms.
var execBuckets = []float64{1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3}

func newExecMetrics() *execMetrics {
	return &execMetrics{seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pipecache_exec_duration_seconds", Help: "Time each processor call (exec) held CachePrc's loop.",
		Buckets: execBuckets})}
}

// ObserveExec implements stages.ExecObserver. It is called on CachePrc's loop and takes no
// lock: a histogram's Observe is a few atomic additions.
func (m *execMetrics) ObserveExec(took time.Duration) { m.seconds.Observe(took.Seconds()) }
