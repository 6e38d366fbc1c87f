package admin

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipecache/pipecache/stages/loop"
)

// requestMetrics are the daemon's per-request metrics, built from its snapshot at scrape time
// like the rest of the collector's: Incoming counts every reply by op and code and keeps a
// duration histogram per op, each loop a wait histogram per inbound queue (stages/loop's
// Histogram: buckets of 2^i µs), so the hot path takes no lock and this package only converts.
type requestMetrics struct {
	duration, replies, queueWait, slow *prometheus.Desc
}

func newRequestMetrics() requestMetrics {
	return requestMetrics{
		duration: prometheus.NewDesc("pipecache_request_duration_seconds",
			"Time from the moment Incoming decoded a request to the moment its reply was handed to the conversation (KCP), by op: "+
				"the server's part of a request's latency, network excluded. Read from the loops' cached clocks (to within a loop iteration); "+
				"requests Incoming answers itself (ping, refusals) count 0.",
			[]string{"op"}, nil),
		replies: prometheus.NewDesc("pipecache_replies_total",
			"Replies to requests, by op and result code (ok, not_found, busy...: PROTOCOL.md's names); op unknown: an op the server does not serve, or an unreadable header.",
			[]string{"op", "code"}, nil),
		queueWait: prometheus.NewDesc("pipecache_queue_wait_seconds",
			"Time a task waited in a stage's inbound queue, from its producer's loop iteration to the consumer's taking it (loops' cached clocks). "+
				"Measured for requests and for what stages send through their outboxes (replies, change events); not yet for loads and writes to outgoing, nor their completions.",
			[]string{"stage", "queue"}, nil),
		slow: prometheus.NewDesc("pipecache_slow_requests_total",
			"Requests that took at least -slowlog (they went to the slow log: /slowlog, pipecachectl slowlog).", nil, nil),
	}
}

func (m requestMetrics) describe(ch chan<- *prometheus.Desc) {
	ch <- m.duration
	ch <- m.replies
	ch <- m.queueWait
	ch <- m.slow
}

func (m requestMetrics) collect(s *Snapshot, ch chan<- prometheus.Metric) {
	for _, op := range s.Requests.Ops {
		ch <- constHistogram(m.duration, op.Duration, op.Op)
		for code, n := range op.Replies {
			ch <- prometheus.MustNewConstMetric(m.replies, counter, float64(n), op.Op, code)
		}
	}
	for i := range s.Loops {
		for j := range s.Loops[i].Stages {
			st := &s.Loops[i].Stages[j]
			for k := range st.Queues {
				qs := &st.Queues[k]
				ch <- constHistogram(m.queueWait, qs.Wait, st.Name, strings.TrimPrefix(qs.Name, st.Name+"."))
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(m.slow, counter, float64(s.Requests.Slow))
}

// constHistogram converts a loop.Histogram's snapshot into a Prometheus histogram (cumulative
// counts per upper bound, in seconds).
func constHistogram(desc *prometheus.Desc, h loop.HistogramSnapshot, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, loop.HistogramBuckets-1)
	var cum uint64
	for i := range loop.HistogramBuckets - 1 {
		cum += h.Counts[i]
		buckets[loop.BucketBound(i).Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(desc, h.Count(), h.Sum.Seconds(), buckets, labels...)
}
