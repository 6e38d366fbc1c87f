package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/pipecache/pipecache/buildinfo"
	"github.com/pipecache/pipecache/processor"
)

// Main is pipecached's main: it reads the flags in args (os.Args[1:]), runs the daemon with
// the processors procs (nil: processor.Default(), the built-ins) until SIGINT or SIGTERM, and
// returns the exit code for os.Exit: 0, 1 on a failure, 2 on bad usage. A custom daemon is
//
//	func main() {
//		procs := processor.Default()
//		if err := procs.Register("maxint", maxInt); err != nil {
//			log.Fatal(err)
//		}
//		os.Exit(daemon.Main(os.Args[1:], procs))
//	}
func Main(args []string, procs *processor.Registry) int {
	// Signals first: a supervisor may send SIGTERM as soon as we say we are listening.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr, procs)
}

// Run is Main without the signals: it runs until ctx ends or the daemon cannot start, writes
// -version and -h to stdout and stderr, logs to stderr, and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, procs *processor.Registry) int {
	hup, stopHUP := hupSignals() // from the start: a closing terminal must not end the daemon
	defer stopHUP()
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
	cfg.daemon.Processors = procs
	logs, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipecached: %v\n", err)
		return 2
	}
	go levelSignals(ctx, logs)
	if limit := cfg.memoryLimit(os.Getenv("GOMEMLIMIT")); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
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
	return serve(ctx, cfg, logs, hup)
}
