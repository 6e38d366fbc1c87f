package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime/metrics"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport/wire"
)

// What the daemon publishes about itself: a snapshot of every stage's counters for monitoring
// (Snapshot, read by the admin endpoint's collector at scrape time), its readiness, and the
// server-wide part of the stats op's reply (serverInfo, wired into CachePrc). Everything here
// reads counters the stages publish atomically, so it is safe from any goroutine.

// Why a daemon is not ready (Daemon.Ready).
var (
	ErrStopping         = errors.New("pipecached: stopping")
	ErrStoreUnreachable = errors.New("pipecached: store unreachable or its change feed behind")
)

// defaultMaxConns is transport.Config's default MaxConns, reported when the daemon was
// started without one.
const defaultMaxConns = 100_000

// Snapshot returns every stage's counters, in the admin endpoint's terms (admin.Snapshot: the
// endpoint reads a daemon through it). Safe for concurrent use.
func (d *Daemon) Snapshot() admin.Snapshot {
	s := admin.Snapshot{
		Version:  d.version,
		Uptime:   time.Since(d.started),
		Incoming: d.p.Incoming.Stats(),
		Requests: d.p.Incoming.Requests(),
		Sessions: d.p.Sessions.Stats(),
		Cache:    d.p.Cache.Stats(),
		Limits:   d.limits,
		Fsync:    d.fsync,
	}
	for _, l := range d.p.loops() {
		s.Loops = append(s.Loops, l.Stats())
	}
	return s
}

// Ready reports whether the daemon serves current data: nil, ErrStopping once Stop has begun,
// or ErrStoreUnreachable while a shared store is unreachable or its change feed is behind
// (CacheStats.Unreachable). Safe for concurrent use.
func (d *Daemon) Ready() error {
	if d.stopping.Load() {
		return ErrStopping
	}
	if d.p.Cache.Stats().Unreachable != 0 {
		return ErrStoreUnreachable
	}
	return nil
}

// serverInfo is CachePrc's Info: it runs on CachePrc's loop and reads only atomically
// published counters, the runtime's heap statistics and /proc (no disk, no lock).
func (d *Daemon) serverInfo() stages.ServerInfo {
	in, ss, l := d.p.Incoming.Stats(), d.p.Sessions.Stats(), d.limits
	return stages.ServerInfo{
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
		FsyncMode:     int64(d.fsync),
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

// SlowLog returns the daemon's slow log (stages.IncomingConfig.SlowLog), newest first: what
// the slowlog op answers, for the admin endpoint. Safe for concurrent use.
func (d *Daemon) SlowLog(ctx context.Context) ([]wire.SlowRequest, error) {
	return d.p.Incoming.SlowLog(ctx)
}
