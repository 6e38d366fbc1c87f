// Package admin is pipecached's admin HTTP endpoint, for operators and their monitoring:
//
//   - /metrics: every counter and gauge the daemon keeps, in Prometheus's exposition format
//     (github.com/prometheus/client_golang), read from the stages' published snapshots
//     (daemon.Daemon.Snapshot, an admin.Snapshot) at scrape time, so the pipeline counts nothing twice; plus the
//     store's load and commit latency histograms (measured by Outgoing through
//     stages.StoreObserver), pipecache_build_info, and the Go runtime's and process's metrics;
//   - /healthz: 200 while the process is alive;
//   - /readyz: 200 while the daemon serves current data (its store reachable and, with etcd,
//     its change feed caught up), 503 with the reason otherwise, and while it starts or stops;
//   - /debug/pprof/: the Go profiler (net/http/pprof).
//
// It owns its listener and HTTP server, nothing else. Package daemon (pipecached) calls it:
// Listen before the daemon starts (its StoreObserver and ExecObserver go into the daemon's
// config), SetDaemon once it runs, Shutdown at exit. The endpoint has no authentication: keep
// it on loopback or a private network (pipecached's default is loopback).
package admin
