// Package bench is pipecache's load generator (cmd/pipecache-bench) and the machinery of the
// side-by-side comparisons with Redis and memcached: bench/compare.sh on loopback, and
// bench/loss.sh across two network namespaces with packet loss (whose table SummarizeLoss
// prints).
//
// One workload (operation mix, key space and distribution, value size, sessions, requests in
// flight) drives any of three servers through a Driver: pipecached through the SDK, Redis
// through go-redis, memcached through gomemcache, each either with a client per session or with
// one client object shared by every worker (Options.Shared). The client side (goroutines, key
// choice, timing, HDR histogram) is the same code for all three, so the comparison measures
// servers and client libraries, not load generators.
//
// Connections are part of what is measured: a failed dial is retried (DialPolicy) and counted,
// a session that never connects is left out and counted, and a pipecache session lost during
// the run is counted while the SDK redials it; none of these ends the run.
//
// Idle (pipecache-bench -idle-sessions) is the other kind of load: many sessions that only
// heartbeat, each a KCP conversation of one shared client/kcpnet engine rather than an SDK
// client, opened at a paced rate from several source addresses, kept alive, put through a
// reconnect storm, with the server's RSS and CPU read from /proc as it goes.
//
// Callers: cmd/pipecache-bench only.
package bench
