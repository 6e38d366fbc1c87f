package admin

import (
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
)

// Snapshot is what the endpoint reads of a daemon at each scrape (Daemon.Snapshot): every
// stage's counters, which the stages publish atomically, and the daemon's limits. It is
// defined here, where it is read, because package daemon imports this one.
type Snapshot struct {
	Version  string        // daemon.Config.Version
	Uptime   time.Duration // since daemon.Start
	Incoming stages.IncomingStats
	Requests stages.RequestStats // every request's duration and result code, by op
	Sessions stages.SessionStats
	Cache    stages.CacheStats
	Loops    []loop.Stats // every loop, the stages it hosts and their queues (daemon/pipeline.go's mapping)
	Limits   Limits
	Fsync    nameservice.Fsync // the embedded store's durability (daemon.Config.Fsync)
}

// Limits are the limits the daemon applies, with defaults resolved.
type Limits struct {
	MaxKey   int   // largest key, in bytes
	MaxValue int   // largest value, in bytes
	MaxConns int   // conversations at most
	Memory   int64 // the cache's memory budget, in bytes
}
