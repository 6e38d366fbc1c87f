package stages

import (
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/stages/loop"
)

// What the daemon publishes about itself: a snapshot of every stage's counters for monitoring
// (Snapshot, read by the admin endpoint's collector at scrape time), its readiness, and the
// server-wide part of the stats op's reply (ServerInfo, wired into CachePrc). Everything here
// reads counters the stages publish atomically, so it is safe from any goroutine.

// DaemonStats is a snapshot of everything the daemon counts.
type DaemonStats struct {
	Version  string        // DaemonConfig.Version
	Uptime   time.Duration // since StartDaemon
	Incoming IncomingStats // the network: transport counters and request outcomes
	Sessions SessionStats
	Cache    CacheStats
	Loops    []loop.Stats // every stage's loop and its queues, in pipeline order
	Limits   Limits
}

// Limits are the limits the daemon applies, with defaults resolved.
type Limits struct {
	MaxKey   int   // largest key, in bytes
	MaxValue int   // largest value, in bytes
	MaxConns int   // conversations at most
	Memory   int64 // the cache's memory budget, in bytes
}

// ServerInfo is what the stats op reports beside the cache's counters (CacheStats). Every
// field but Version is an integer.
type ServerInfo struct {
	Version       string `json:"version,omitempty"` // only when asked for (task.FlagStatsText)
	UptimeMs      int64  `json:"uptime_ms"`
	Sessions      int64  `json:"sessions"`
	Conversations int64  `json:"conversations"`
	Subscriptions int64  `json:"subscriptions"`
	HeapBytes     int64  `json:"heap_bytes"` // Go heap: live objects and those not yet swept
	RSSBytes      int64  `json:"rss_bytes"`  // resident set size (/proc/self/statm); 0 if unreadable
	MemoryBudget  int64  `json:"memory_budget_bytes"`
	MaxKey        int64  `json:"max_key_bytes"`
	MaxValue      int64  `json:"max_value_bytes"`
	MaxConns      int64  `json:"max_conns"`
}

// statsReply is the stats op's JSON object: one flat object of both structs' keys.
type statsReply struct {
	CacheStats
	*ServerInfo
}

// defaultMaxConns is transport.Config's default MaxConns, reported when the daemon was
// started without one.
const defaultMaxConns = 100_000

// Snapshot returns every stage's counters. Safe for concurrent use.
func (d *Daemon) Snapshot() DaemonStats {
	return DaemonStats{
		Version:  d.version,
		Uptime:   time.Since(d.started),
		Incoming: d.incoming.Stats(),
		Sessions: d.sessions.Stats(),
		Cache:    d.cache.Stats(),
		Loops: []loop.Stats{d.incoming.Loop().Stats(), d.sessions.Loop().Stats(),
			d.cache.Loop().Stats(), d.outgoing.Loop().Stats()},
		Limits: d.limits(),
	}
}

// Ready reports whether the daemon serves current data: nil, ErrStopping once Stop has begun,
// or ErrStoreUnreachable while a shared store is unreachable or its change feed is behind
// (CacheStats.Unreachable). Safe for concurrent use.
func (d *Daemon) Ready() error {
	if d.stopping.Load() {
		return ErrStopping
	}
	if d.cache.Stats().Unreachable != 0 {
		return ErrStoreUnreachable
	}
	return nil
}

func (d *Daemon) limits() Limits {
	l := Limits{MaxKey: d.incoming.cfg.MaxKey, MaxValue: d.incoming.cfg.MaxValue,
		MaxConns: d.incoming.cfg.Transport.MaxConns, Memory: d.cache.cfg.Memory}
	if l.MaxConns <= 0 {
		l.MaxConns = defaultMaxConns
	}
	return l
}

// serverInfo is CachePrc's Info: it runs on CachePrc's loop and reads only atomically
// published counters, the runtime's heap statistics and /proc (no disk, no lock).
func (d *Daemon) serverInfo() ServerInfo {
	in, ss, l := d.incoming.Stats(), d.sessions.Stats(), d.limits()
	return ServerInfo{
		Version:       d.version,
		UptimeMs:      time.Since(d.started).Milliseconds(),
		Sessions:      ss.Sessions,
		Conversations: int64(in.Transport.Conns),
		Subscriptions: ss.Subscriptions,
		HeapBytes:     heapBytes(),
		RSSBytes:      rssBytes(),
		MemoryBudget:  l.Memory,
		MaxKey:        int64(l.MaxKey),
		MaxValue:      int64(l.MaxValue),
		MaxConns:      int64(l.MaxConns),
	}
}

// heapBytes reads the Go heap's size from runtime/metrics, which does not stop the world.
func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// rssBytes reads the process's resident set size from /proc/self/statm (its second field, in
// pages); 0 if it cannot.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	return parseStatmRSS(b) * int64(os.Getpagesize())
}

// parseStatmRSS returns the resident pages of a /proc/<pid>/statm line, or 0 if malformed.
func parseStatmRSS(b []byte) int64 {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	n, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
