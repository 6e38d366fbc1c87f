package stages

// ServerInfo is what the stats op reports beside the cache's counters (CacheStats): the rest of
// the server's state, which the daemon gathers (CacheConfig.Info). Every field but Version is
// an integer.
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
	FsyncMode     int64  `json:"fsync_mode"` // nameservice.Fsync: 0 always, 1 everysec, 2 no
}

// statsReply is the stats op's JSON object: one flat object of both structs' keys.
type statsReply struct {
	CacheStats
	*ServerInfo
}
