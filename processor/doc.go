// Package processor holds pipecache's entry processors: named functions run by CachePrc on its
// loop, where the data lives, that read a key's current value and the caller's arguments and
// return the key's new value (or delete it, or leave it unchanged) and a result for the caller.
// A processor runs atomically per key, in order with every other operation on that key; the
// stage makes its write durable, versions it and pushes it to subscribers like a set.
//
// The package owns:
//
//   - the processor API: Func, Input, Output, Action, the error kinds (errors.go) and the
//     Registry that maps names to processors (registry.go);
//   - Call (call.go), the one way the stage runs a processor: it recovers a panic into an
//     error, enforces the size limits and the step budget, and measures the time taken;
//   - the argument encoding shared by the built-ins (codec.go), with builders for callers
//     (args.go) and decoders of the built-ins' results (results.go);
//   - live values (live.go): a Type is a processor whose values the stage keeps decoded
//     between calls (Type, Value, CallLive, TypeFunc), encoded once per store commit;
//   - the built-in processors hash, list and zset, each a Type with its own documented value
//     encoding (hash.go, list.go, zset.go on the layout in table.go; their live values in
//     hash_live.go, list_live.go and zset_live.go, on B-trees of github.com/tidwall/btree and
//     a ring), and full decoders and encoders of those values (values.go) for clients that
//     read them with a plain get.
//
// PROCESSORS.md at the repository's root specifies every encoding byte by byte, for clients in
// other languages.
//
// Who may call what: the stage (CachePrc) calls Registry.LookupType, Call, CallLive and the live
// values' methods from its loop; a
// daemon's main registers processors into a Registry before starting the daemon; clients (the
// SDK, pipecachectl, applications) use the argument builders, the result decoders and the
// value decoders. The package imports nothing of pipecache's own, starts no goroutine and does
// no I/O. A live value is not safe for concurrent use: one loop owns it.
package processor
