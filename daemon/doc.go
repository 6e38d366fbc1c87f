// Package daemon is pipecached as a package, in two layers (as nsq's nsqd package and its
// apps/nsqd command):
//
//   - the daemon: Config, Start (open the store, wire the stages, start them), Stop (in
//     pipeline order, without losing an acknowledged write), Snapshot and Ready. daemon.go is
//     the Daemon; store.go, OpenStore, the one function that opens every store (the embedded
//     one and etcd); pipeline.go, the wiring: which loop hosts which stage, where each
//     operation goes, in what order the loops start and stop; stats.go, what it publishes.
//   - the command over it: Main and Run turn flags (with their environment variables and the
//     -config file) into a Config, then run the daemon and its admin endpoint until a signal.
//     main.go (flags to exit code), config.go (the flags), layers.go (command line over
//     environment over file), tomlfile.go (the file), size.go (sizes with units), usage.go
//     (-h), log.go (the logger, its level and format at run time), reload.go (SIGHUP),
//     serve.go (tokens, key, admin endpoint, the daemon's life).
//
// cmd/pipecached's main calls Main with the built-in processors; a custom daemon, a main of
// its own, calls Main with a processor.Registry that holds its processors too
// (examples/customdaemon), and keeps every flag. A program that embeds a daemon without the
// flags calls Start and Stop (Example_embed). Start starts the stages' goroutines; Stop ends
// them.
package daemon
