// Package nameservice is where pipecache's data persists: the store behind the cache. Outgoing's
// worker goroutines are its only callers in the daemon; tools may use it directly on a stopped
// daemon's data directory.
//
// Store is the interface; Open returns the embedded default, a bbolt database in a directory.
// Every record carries the version the cache gave it and its expiry; an expired record reads as
// absent and is swept from disk in the background.
package nameservice
