// Package nameservice is where pipecache's data persists: the store behind the cache. Outgoing's
// worker goroutines are its only callers in the daemon; tools may use it directly on a stopped
// daemon's data directory.
//
// Store is the interface; Open returns the embedded default, a Pebble store in a directory
// (pebble.go), with the durability the operator chose (Fsync, fsync.go), migrating a directory
// an earlier version wrote with bbolt (migrate.go; Bolt, bolt.go, stays for that and for the
// engines' comparison), and keeping deletes possible on a full disk (reserve.go,
// pebble_disk.go). Etcd is the shared store of a cluster. Every record carries the version the
// cache gave it and its expiry; an expired record reads as absent and is swept from disk in the
// background.
package nameservice
