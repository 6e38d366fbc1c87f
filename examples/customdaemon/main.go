// Command customdaemon is pipecached with one processor more: ratelimit, a fixed-window rate
// limiter that runs where its counter lives, so that many servers counting one user's logins
// need no read-modify-write round trips. It is the shape of every custom daemon: a main that
// registers its processors and calls daemon.Main, which gives it every flag of pipecached.
//
//	go run ./examples/customdaemon -listen 127.0.0.1:7070 -data-dir /tmp/customdaemon
//	pipecachectl exec login:alice ratelimit 5 1m     # ok 4, ok 3, ..., then limited 59000
package main

import (
	"fmt"
	"os"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/processor"
)

func main() {
	procs, err := processors()
	if err != nil {
		fmt.Fprintln(os.Stderr, "customdaemon:", err)
		os.Exit(2)
	}
	os.Exit(daemon.Main(os.Args[1:], procs))
}

// processors returns the built-ins (hash, list, zset) and this daemon's own.
func processors() (*processor.Registry, error) {
	procs := processor.Default()
	if err := procs.Register("ratelimit", rateLimit); err != nil {
		return nil, err
	}
	return procs, nil
}
