package admin

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
)

// collector turns the daemon's counters (Snapshot) into Prometheus metrics when
// scraped: the stages keep their counters as they always did, and nothing is counted twice.
type collector struct {
	src    func() (Snapshot, bool) // the daemon's snapshot; false until it has started
	plain  []plainMetric
	loops  []loopMetric
	stages []stageMetric
	queues []queueMetric
	fsync  *prometheus.Desc // the store's durability, as a label
	reqs   requestMetrics
}

// plainMetric is one daemon-wide counter or gauge.
type plainMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*Snapshot) float64
}

// loopMetric is one of every loop's counters, labelled with the loop's name: the stages it
// hosts (loop="incoming+sessionmgr", ...).
type loopMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*loop.Stats) float64
}

// stageMetric is one of every stage's counters, labelled with the stage and the loop that
// hosts it.
type stageMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*loop.StageStats) float64
}

// queueMetric is one of every queue's counters, labelled with its stage and its name.
type queueMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*loop.QueueStats) float64
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

func newCollector(src func() (Snapshot, bool)) *collector {
	c := &collector{src: src, reqs: newRequestMetrics()}
	c.plain = append(c.plain, transportMetrics()...)
	c.plain = append(c.plain, incomingMetrics()...)
	c.plain = append(c.plain, sessionMetrics()...)
	c.plain = append(c.plain, cacheMetrics()...)
	c.plain = append(c.plain, execCounters()...)
	c.loops = loopMetrics()
	c.stages = stageMetrics()
	c.queues = queueMetrics()
	c.fsync = prometheus.NewDesc("pipecache_store_fsync_info",
		"Always 1; the label is the store's durability mode (-fsync: always, everysec or no).", []string{"mode"}, nil)
	return c
}

func plain(name, help string, kind prometheus.ValueType, v func(*Snapshot) float64) plainMetric {
	return plainMetric{prometheus.NewDesc(name, help, nil, nil), kind, v}
}

func transportMetrics() []plainMetric {
	tr := func(f func(*Snapshot) uint64) func(*Snapshot) float64 {
		return func(s *Snapshot) float64 { return float64(f(s)) }
	}
	return []plainMetric{
		plain("pipecache_transport_received_datagrams_total", "UDP datagrams received.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.DatagramsIn })),
		plain("pipecache_transport_sent_datagrams_total", "UDP datagrams sent.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.DatagramsOut })),
		plain("pipecache_transport_received_bytes_total", "Bytes received in UDP datagrams.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.BytesIn })),
		plain("pipecache_transport_sent_bytes_total", "Bytes sent in UDP datagrams.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.BytesOut })),
		plain("pipecache_transport_malformed_datagrams_total", "Datagrams dropped as too short, not KCP, truncated or rejected by KCP.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Malformed })),
		plain("pipecache_transport_unauthenticated_datagrams_total", "Datagrams dropped because they did not decrypt and authenticate with the key (tampered, another key, none).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Unauthenticated })),

		plain("pipecache_transport_refused_datagrams_total", "Datagrams for new conversations refused (conversation cap or admission rate).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Refused })),
		plain("pipecache_transport_not_start_datagrams_total", "Datagrams for unknown conversations that do not begin one.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.NotStart })),
		plain("pipecache_transport_pending_evicted_total", "Pending conversations closed to make room for newer ones.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Evicted })),
		plain("pipecache_transport_amplification_dropped_datagrams_total", "Datagrams to pending conversations not sent: over 3x what they had sent.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.AmplificationDropped })),
		plain("pipecache_transport_validated_total", "Conversations whose client acknowledged something the server sent: its address is its own, and the 3x limit no longer applies.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Validated })),
		plain("pipecache_transport_resets_total",
			"Resets sent: data for a conversation the server does not know (the client redials at once).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Resets })),
		plain("pipecache_transport_send_dropped_datagrams_total", "Datagrams the kernel refused to send (EPERM, ENOBUFS...): lost, KCP retransmits.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.SendDropped })),
		plain("pipecache_transport_send_blocked_total", "Times the socket's send buffer was full.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.SendBlocked })),
		plain("pipecache_transport_conversations_opened_total", "KCP conversations created.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Opened })),
		plain("pipecache_transport_conversations_closed_total", "KCP conversations ended.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Closed })),
		plain("pipecache_transport_conversations", "KCP conversations now.", gauge,
			func(s *Snapshot) float64 { return float64(s.Incoming.Transport.Conns) }),
		plain("pipecache_transport_pending_conversations", "Conversations not yet accepted by a hello.", gauge,
			func(s *Snapshot) float64 { return float64(s.Incoming.Transport.Pending) }),
		plain("pipecache_transport_idle_conversations", "Conversations compact now: idle, their KCP state kept in a few words and its buffers given back.", gauge,
			func(s *Snapshot) float64 { return float64(s.Incoming.Transport.Idle) }),
		plain("pipecache_transport_compactions_total", "Times a conversation fell idle and gave its KCP and buffers back.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Compactions })),
		plain("pipecache_transport_resends_total", "Retransmission checks that resent data (a reply or push the peer had not acknowledged).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Resends })),
		plain("pipecache_transport_retransmit_backoffs_total", "Retransmission checks spaced out because the peer had answered none of the last two resends.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.Backoffs })),
		plain("pipecache_transport_retransmit_deferred_total", "Retransmission checks put off: a loop iteration's retransmission budget was spent.", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.ChecksDeferred })),
		plain("pipecache_transport_shed_new_datagrams_total", "Datagrams that would have begun a conversation, dropped while the server was behind (the client resends its hello).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.ShedNew })),
		plain("pipecache_transport_behind_total", "Times the server began to count as behind (and to shed new conversations).", counter,
			tr(func(s *Snapshot) uint64 { return s.Incoming.Transport.BehindSpells })),
		plain("pipecache_transport_max_conversations", "Conversations at most (-max-conns).", gauge,
			func(s *Snapshot) float64 { return float64(s.Limits.MaxConns) }),
	}
}

func incomingMetrics() []plainMetric {
	return []plainMetric{
		plain("pipecache_incoming_requests_total", "Frames decoded into requests.", counter,
			func(s *Snapshot) float64 { return float64(s.Incoming.Requests) }),
		plain("pipecache_incoming_bad_frames_total", "Frames whose header could not be decoded.", counter,
			func(s *Snapshot) float64 { return float64(s.Incoming.BadFrames) }),
		plain("pipecache_incoming_busy_total", "Requests answered 'busy': the next stage's queue was full, or the reply did not fit in the conversation's send queue.", counter,
			func(s *Snapshot) float64 { return float64(s.Incoming.Busy) }),
		plain("pipecache_incoming_replies_dropped_total", "Replies for conversations that had ended.", counter,
			func(s *Snapshot) float64 { return float64(s.Incoming.RepliesDropped) }),
		plain("pipecache_max_key_bytes", "Largest key accepted (-max-key).", gauge,
			func(s *Snapshot) float64 { return float64(s.Limits.MaxKey) }),
		plain("pipecache_max_value_bytes", "Largest value accepted (-max-value).", gauge,
			func(s *Snapshot) float64 { return float64(s.Limits.MaxValue) }),
	}
}

func sessionMetrics() []plainMetric {
	ss := func(f func(*stages.SessionStats) int64) func(*Snapshot) float64 {
		return func(s *Snapshot) float64 { return float64(f(&s.Sessions)) }
	}
	return []plainMetric{
		plain("pipecache_sessions", "Sessions alive now.", gauge, ss(func(s *stages.SessionStats) int64 { return s.Sessions })),
		plain("pipecache_sessions_expired_total", "Sessions expired for silence.", counter, ss(func(s *stages.SessionStats) int64 { return s.Expired })),
		plain("pipecache_sessions_refused_total", "Hellos refused (bad token, bad resume).", counter, ss(func(s *stages.SessionStats) int64 { return s.Refused })),
		plain("pipecache_subscriptions", "Keys and prefixes subscribed to, over all sessions.", gauge, ss(func(s *stages.SessionStats) int64 { return s.Subscriptions })),
		plain("pipecache_push_dropped_total", "Pushes the network stage could not take (kept for replay).", counter, ss(func(s *stages.SessionStats) int64 { return s.PushesDropped })),
		plain("pipecache_push_resyncs_total", "Resync pushes sent (a gap left the replay window, or a backlog overflowed).", counter, ss(func(s *stages.SessionStats) int64 { return s.Resyncs })),
		plain("pipecache_push_held_total", "Changes that waited for room in a slow subscriber's push window.", counter, ss(func(s *stages.SessionStats) int64 { return s.Held })),
		plain("pipecache_push_coalesced_total", "Changes replaced by a newer one of the same key, or covered by a resync.", counter, ss(func(s *stages.SessionStats) int64 { return s.Coalesced })),
		plain("pipecache_push_values_dropped_total", "Pushes sent without their value: a session's or everyone's value budget was spent.", counter, ss(func(s *stages.SessionStats) int64 { return s.ValuesDropped })),
		plain("pipecache_push_value_bytes", "Bytes of values held in pushes not yet acknowledged and in backlogs.", gauge, ss(func(s *stages.SessionStats) int64 { return s.PushBytes })),
	}
}

func cacheMetrics() []plainMetric {
	cs := func(f func(*stages.CacheStats) uint64) func(*Snapshot) float64 {
		return func(s *Snapshot) float64 { return float64(f(&s.Cache)) }
	}
	return []plainMetric{
		plain("pipecache_cache_gets_total", "Reads of a key (get, and each key of an mget).", counter, cs(func(s *stages.CacheStats) uint64 { return s.Gets })),
		plain("pipecache_cache_hits_total", "Reads answered from the cache.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Hits })),
		plain("pipecache_cache_misses_total", "Reads that went to the store.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Misses })),
		plain("pipecache_cache_negative_hits_total", "Reads answered 'not found' from a cached absence.", counter, cs(func(s *stages.CacheStats) uint64 { return s.NegativeHits })),
		plain("pipecache_cache_sets_total", "Writes (set, add, replace, cas, incr, touch).", counter, cs(func(s *stages.CacheStats) uint64 { return s.Sets })),
		plain("pipecache_cache_deletes_total", "Deletes.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Deletes })),
		plain("pipecache_cache_evictions_total", "Entries evicted to stay within the memory budget.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Evictions })),
		plain("pipecache_cache_expirations_total", "Entries whose TTL ran out.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Expirations })),
		plain("pipecache_cache_store_loads_total", "Loads sent to the store.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Loads })),
		plain("pipecache_cache_store_writes_total", "Writes sent to the store.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Stores })),
		plain("pipecache_cache_store_timeouts_total", "Requests answered 'timeout' because the store was slower than -store-timeout.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Timeouts })),
		plain("pipecache_cache_foreign_changes_total", "Changes by other writers (the shared store's change feed) applied here.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Foreign })),
		plain("pipecache_cache_stale_reads_total", "Reads served from the cache, flagged stale, while the shared store was unreachable.", counter, cs(func(s *stages.CacheStats) uint64 { return s.StaleReads })),
		plain("pipecache_cache_items", "Entries in the cache.", gauge, func(s *Snapshot) float64 { return float64(s.Cache.Items) }),
		plain("pipecache_cache_bytes", "Memory the cache's entries take (keys, values, overhead), counted against the budget.", gauge, func(s *Snapshot) float64 { return float64(s.Cache.Bytes) }),
		plain("pipecache_cache_memory_budget_bytes", "The cache's memory budget (-memory-mb).", gauge, func(s *Snapshot) float64 { return float64(s.Limits.Memory) }),
		plain("pipecache_store_unreachable", "1 while the shared store is unreachable or its change feed is behind, else 0.", gauge, func(s *Snapshot) float64 { return float64(s.Cache.Unreachable) }),
	}
}

func execCounters() []plainMetric {
	cs := func(f func(*stages.CacheStats) uint64) func(*Snapshot) float64 {
		return func(s *Snapshot) float64 { return float64(f(&s.Cache)) }
	}
	// One metric, its kinds as a constant label each: the collector's metrics have no variable labels.
	errs := func(kind string, f func(*stages.CacheStats) uint64) plainMetric {
		return plainMetric{prometheus.NewDesc("pipecache_exec_errors_total",
			"Execs that failed, by kind (unknown_processor, bad_args, wrong_type, too_large, over_budget, internal: panics too); nothing changed.",
			nil, prometheus.Labels{"kind": kind}), counter, cs(f)}
	}
	return []plainMetric{
		plain("pipecache_exec_total", "Execs: processor calls, and those refused before one ran.", counter, cs(func(s *stages.CacheStats) uint64 { return s.Execs })),
		errs("unknown_processor", func(s *stages.CacheStats) uint64 { return s.ExecUnknown }),
		errs("bad_args", func(s *stages.CacheStats) uint64 { return s.ExecBadArgs }),
		errs("wrong_type", func(s *stages.CacheStats) uint64 { return s.ExecWrongType }),
		errs("too_large", func(s *stages.CacheStats) uint64 { return s.ExecTooLarge }),
		errs("over_budget", func(s *stages.CacheStats) uint64 { return s.ExecOverBudget }),
		errs("internal", func(s *stages.CacheStats) uint64 { return s.ExecInternal }),
		plain("pipecache_exec_seconds_total", "Time processors ran on CachePrc's loop.", counter,
			func(s *Snapshot) float64 { return float64(s.Cache.ExecNanos) / 1e9 }),
	}
}

func loopMetrics() []loopMetric {
	l := func(name, help string, kind prometheus.ValueType, v func(*loop.Stats) float64) loopMetric {
		return loopMetric{prometheus.NewDesc(name, help, []string{"loop"}, nil), kind, v}
	}
	return []loopMetric{
		l("pipecache_loop_iterations_total", "Event-loop iterations.", counter, func(s *loop.Stats) float64 { return float64(s.Iterations) }),
		l("pipecache_loop_sleeps_total", "Times the loop went to sleep in epoll_wait with nothing to do.", counter, func(s *loop.Stats) float64 { return float64(s.Sleeps) }),
		l("pipecache_loop_tasks_total", "Tasks handed to the handlers of the stages the loop hosts; per iteration, the batch size.", counter, func(s *loop.Stats) float64 { return float64(s.Tasks) }),
		l("pipecache_loop_panics_total", "Panics recovered on the loop: its stages' handlers, and its fd, timer and ReadyTimer callbacks.", counter, func(s *loop.Stats) float64 { return float64(s.Panics) }),
		l("pipecache_loop_busy_seconds_total", "Time spent working rather than sleeping in epoll_wait; its rate is the busy ratio.", counter, func(s *loop.Stats) float64 { return s.Busy.Seconds() }),
		l("pipecache_loop_timers", "Timers scheduled on the loop (approximate).", gauge, func(s *loop.Stats) float64 { return float64(s.Timers) }),
	}
}

func stageMetrics() []stageMetric {
	st := func(name, help string, kind prometheus.ValueType, v func(*loop.StageStats) float64) stageMetric {
		return stageMetric{prometheus.NewDesc(name, help, []string{"stage", "loop"}, nil), kind, v}
	}
	return []stageMetric{
		st("pipecache_stage_tasks_total", "Tasks handed to the stage's handlers; the loop label is the loop that hosts it.", counter, func(s *loop.StageStats) float64 { return float64(s.Tasks) }),
		st("pipecache_stage_panics_total", "The stage's handler panics recovered.", counter, func(s *loop.StageStats) float64 { return float64(s.Panics) }),
	}
}

func queueMetrics() []queueMetric {
	q := func(name, help string, kind prometheus.ValueType, v func(*loop.QueueStats) float64) queueMetric {
		return queueMetric{prometheus.NewDesc(name, help, []string{"stage", "queue"}, nil), kind, v}
	}
	return []queueMetric{
		q("pipecache_queue_length", "Tasks waiting in the queue (its depth).", gauge, func(s *loop.QueueStats) float64 { return float64(s.Len) }),
		q("pipecache_queue_capacity", "The queue's capacity.", gauge, func(s *loop.QueueStats) float64 { return float64(s.Cap) }),
		q("pipecache_queue_pushed_total", "Tasks accepted into the queue.", counter, func(s *loop.QueueStats) float64 { return float64(s.Pushed) }),
		q("pipecache_queue_rejected_total", "Pushes refused because the queue was full (back-pressure).", counter, func(s *loop.QueueStats) float64 { return float64(s.Rejected) }),
		q("pipecache_queue_wakeups_total", "Times a producer woke the sleeping consumer (eventfd writes).", counter, func(s *loop.QueueStats) float64 { return float64(s.Wakeups) }),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.plain {
		ch <- m.desc
	}
	for _, m := range c.loops {
		ch <- m.desc
	}
	for _, m := range c.stages {
		ch <- m.desc
	}
	for _, m := range c.queues {
		ch <- m.desc
	}
	ch <- c.fsync
	c.reqs.describe(ch)
}

// Collect implements prometheus.Collector: one snapshot of the daemon per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.src()
	if !ok {
		return // still starting (waiting for the store): nothing to say yet
	}
	for _, m := range c.plain {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s))
	}
	ch <- prometheus.MustNewConstMetric(c.fsync, gauge, 1, s.Fsync.String())
	for i := range s.Loops {
		ls := &s.Loops[i]
		for _, m := range c.loops {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(ls), ls.Name)
		}
		for j := range ls.Stages {
			c.collectStage(ch, &ls.Stages[j])
		}
	}
	c.reqs.collect(&s, ch)
}

// collectStage sends one stage's metrics and its queues'.
func (c *collector) collectStage(ch chan<- prometheus.Metric, st *loop.StageStats) {
	for _, m := range c.stages {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st), st.Name, st.Loop)
	}
	for j := range st.Queues {
		qs := &st.Queues[j]
		name := strings.TrimPrefix(qs.Name, st.Name+".")
		for _, m := range c.queues {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(qs), st.Name, name)
		}
	}
}
