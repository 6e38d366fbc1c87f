// Package bench is pipecache's load generator (cmd/pipecache-bench) and the machinery of the
// side-by-side comparison with Redis and memcached (bench/compare.sh).
//
// One workload (operation mix, key space and distribution, value size, sessions, requests in
// flight) drives any of three servers through a Driver: pipecached through the SDK, Redis
// through go-redis, memcached through gomemcache. The client side (goroutines, key choice,
// timing, HDR histogram) is the same code for all three, so the comparison measures servers,
// not load generators.
package bench
