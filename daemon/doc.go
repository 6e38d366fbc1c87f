// Package daemon is pipecached, the command, as a package: its flags (with their environment
// variables and the -config file), its logging, its admin endpoint and the daemon's life from
// start to a graceful stop. cmd/pipecached's main calls Main with the built-in processors; a
// custom daemon, a main of its own, calls Main with a processor.Registry that holds its
// processors too (examples/customdaemon), and keeps every flag.
//
// Files: main.go (Main, Run: flags to exit code), config.go (the flags), log.go (the logger,
// its level at run time), serve.go (the daemon, the admin endpoint, the shared store, the stop).
// Who may call it: a main. It starts the daemon's goroutines and stops them before returning.
package daemon
