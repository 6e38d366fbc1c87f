// Command pipecached is the pipecache daemon.
//
// Every flag can also be set from the environment (-listen from PIPECACHE_LISTEN, and so on:
// upper case, dashes as underscores, prefixed PIPECACHE_) or from a TOML file named by -config
// (keys: the flags' names). The command line wins over the environment, which wins over the
// file. pipecached -h lists them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/pipecache/pipecache/buildinfo"
)

func main() {
	// Signals first: a supervisor may send SIGTERM as soon as we say we are listening.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is pipecached: it returns the exit code (0, 1 on a failure, 2 on bad usage) once ctx
// ends or the daemon cannot start.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "pipecached: %v\n", err)
		return 2
	case cfg.version:
		fmt.Fprintf(stdout, "pipecached %s\n", buildinfo.Read())
		return 0
	}
	log, lv, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipecached: %v\n", err)
		return 2
	}
	go levelSignals(ctx, lv, cfg.logFormat, stderr)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			defer f.Close()
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "pipecached: -cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	return serve(ctx, cfg, log)
}
