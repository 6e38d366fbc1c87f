// Command pipecached is the pipecache daemon, with the built-in processors (hash, list, zset).
// Everything it does is package daemon's: a daemon with processors of its own is a main that
// registers them and calls daemon.Main too (examples/customdaemon).
//
// Every flag can also be set from the environment (-listen from PIPECACHE_LISTEN, and so on:
// upper case, dashes as underscores, prefixed PIPECACHE_) or from a TOML file named by -config
// (keys: the flags' names). The command line wins over the environment, which wins over the
// file. pipecached -h lists them all.
package main

import (
	"os"

	"github.com/pipecache/pipecache/daemon"
)

func main() { os.Exit(daemon.Main(os.Args[1:], nil)) }
