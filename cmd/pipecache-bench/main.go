// Command pipecache-bench is a load generator for pipecached, and for Redis and memcached with
// the identical workload (so the client side costs the same for every server).
//
//	pipecache-bench -server pipecache -addr 127.0.0.1:7070 -sessions 50 -inflight 1 \
//	    -mix get=90,set=10 -keys 100000 -value 100 -duration 10s -preload -warmup 2s
//	pipecache-bench -server redis -addr 127.0.0.1:6379 -mix zincr=100 -keys 1 -preload=false
//
// With -idle-sessions N it instead opens N sessions that only heartbeat, from one shared KCP
// engine, and reports the open rate, failures, heartbeat round trips and (with -pid) the
// server's RSS and CPU as it goes; -storm N adds a reconnect storm:
//
//	pipecache-bench -idle-sessions 100000 -heartbeat 30s -rate 2000 \
//	    -source-ips 127.0.1.1-127.0.1.64 -duration 5m -pid $(pidof pipecached) -storm-at 2m -storm 20000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pipecache/pipecache/bench"
	"github.com/pipecache/pipecache/buildinfo"
)

func main() {
	code := run()
	if sig := caught.Load(); sig != nil {
		// Interrupted: the partial result is printed; now die of the signal as the shell expects,
		// so that a script running us (bench/loss.sh, compare.sh) stops too. Bash ignores a
		// Ctrl-C its child handled and exited from normally.
		signal.Reset(*sig)
		if !signal.Ignored(*sig) { // ignored when we were started so: then say it by the exit code
			syscall.Kill(os.Getpid(), *sig)
			time.Sleep(time.Second) // the signal ends the process before this does
		}
		code = 128 + int(*sig)
	}
	os.Exit(code)
}

// caught is the signal that interrupted the run, if one did.
var caught atomic.Pointer[syscall.Signal]

// interruptible returns a context cancelled at the first SIGINT or SIGTERM, which it records in
// caught.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			s := sig.(syscall.Signal)
			caught.Store(&s)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// flags are the command line: the workload (cfg), how to connect (open) and what to do.
type flags struct {
	cfg                      bench.Config
	open                     bench.Options
	asJSON, quiet, version   bool
	label, cpuProfile        string
	summarize, summarizeLoss string
	idle                     idleFlags
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	cfg := &f.cfg
	fs := flag.NewFlagSet("pipecache-bench", flag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", "pipecache", "pipecache, pipecache-cluster (-addr: etcd://host:2379/prefix or node,node,...), redis or memcached")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:7070", "server address")
	fs.StringVar(&cfg.Name, "name", "", "the server's name in the results (default: -server), e.g. redis-aof")
	fs.StringVar(&f.open.Token, "token", os.Getenv("PIPECACHE_TOKEN"), "pipecache auth token (env PIPECACHE_TOKEN)")
	fs.IntVar(&cfg.Sessions, "sessions", 50, "connections (sessions)")
	fs.IntVar(&cfg.InFlight, "inflight", 1, "requests in flight per session")
	fs.BoolVar(&cfg.Shared, "shared", false, "one client object for all sessions × inflight workers: one pipecache Client (one session); Redis and memcached clients are one pooled client either way")
	fs.StringVar(&cfg.Mix, "mix", "get=90,set=10", "operation weights: get, set, mget, incr, cas, zincr (a leaderboard update: exec zset incr on pipecache, ZINCRBY on Redis; the boards are -keys keys)")
	fs.IntVar(&cfg.Keys, "keys", 100_000, "key space")
	fs.StringVar(&cfg.Dist, "dist", "uniform", "key distribution: uniform or zipf")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", 1.1, "Zipf exponent (> 1)")
	fs.IntVar(&cfg.Value, "value", 100, "value size in bytes")
	fs.IntVar(&cfg.MGetKeys, "mget-keys", 10, "keys per mget")
	fs.IntVar(&cfg.Members, "members", 100, "zincr: members per board, each increment for one at random")
	fs.BoolVar(&cfg.ZIncrCAS, "zincr-cas", false, "zincr on pipecache by get, decode, change, encode and CAS retried (no processor); the lost races are its cas_conflicts")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time (0: until -requests); with -idle-sessions, the whole run")
	fs.Int64Var(&cfg.Requests, "requests", 0, "measured requests (0: until -duration)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured run before measuring")
	fs.BoolVar(&cfg.Preload, "preload", true, "set every key before the warm-up, so gets hit")
	fs.StringVar(&cfg.Prefix, "prefix", "", "key prefix")
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process id, to report its CPU per operation (with -idle-sessions: its RSS and CPU)")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "pipecached's admin /metrics URL (http://127.0.0.1:7070/metrics), to report its datagrams and wake-ups per operation")
	fs.IntVar(&cfg.NearCache, "near-cache", 0, "give each pipecache session a near cache of this many keys (0: off)")
	fs.IntVar(&cfg.Subscribers, "subscribers", 0, "extra pipecache sessions subscribed to every key (loads the notification path)")
	fs.IntVar(&f.open.Dial.Attempts, "dial-attempts", 5, "tries per session before it counts as failed (its workers then do not run)")
	fs.DurationVar(&f.open.Dial.Backoff, "dial-backoff", 100*time.Millisecond, "wait after a failed dial, doubled after each further one (up to 2s), with jitter")
	fs.DurationVar(&f.open.Dial.Deadline, "dial-deadline", time.Minute, "bound on all the dials together")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON (for scripts)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line, no line per retried dial")
	fs.StringVar(&f.label, "label", "", "with -json: the workload's name, added to the result")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator to this file (go tool pprof)")
	fs.StringVar(&f.summarize, "summarize", "", "print the comparison table of a JSON-lines results file (compare.sh), and exit")
	fs.StringVar(&f.summarizeLoss, "summarize-loss", "", "print the loss table of a JSON-lines results file (loss.sh), and exit")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	f.idle.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.open.Sessions, f.open.Shared, f.open.NearCache = cfg.Sessions, cfg.Shared, cfg.NearCache
	cfg.Token = f.open.Token
	if err := f.idle.finish(f); err != nil {
		fmt.Fprintln(fs.Output(), err)
		return nil, err
	}
	return f, nil
}

func run() int {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case f.version:
		fmt.Println(buildinfo.Read().VersionLine("pipecache-bench"))
		return 0
	case f.summarize != "":
		return summarize(f.summarize, bench.Summarize)
	case f.summarizeLoss != "":
		return summarize(f.summarizeLoss, bench.SummarizeLoss)
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipecache-bench: -cpuprofile:", err)
			return 2
		}
		defer pf.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := interruptible()
	defer stop()
	if f.idle.cfg.Sessions > 0 {
		return runIdle(ctx, f)
	}
	return measure(ctx, f)
}

// measure runs the workload and prints its result.
func measure(ctx context.Context, f *flags) int {
	if !f.quiet {
		f.open.Dial.OnRetry = func(session, attempt int, err error) {
			fmt.Fprintf(os.Stderr, "pipecache-bench: session %d: dial attempt %d failed, retrying: %v\n", session, attempt, err)
		}
	}
	d, err := bench.Open(f.cfg.Server, f.cfg.Addr, f.open)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	defer d.Close()
	if st := d.Stats(); st.DialFailures > 0 {
		fmt.Fprintf(os.Stderr, "pipecache-bench: %d of %d sessions could not connect; running with %d\n", st.DialFailures, st.Sessions, st.Connected)
	}
	var progress io.Writer = os.Stderr
	if f.quiet {
		progress = nil
	}
	res, err := bench.Run(ctx, f.cfg, d, progress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	if f.asJSON {
		json.NewEncoder(os.Stdout).Encode(bench.Labelled{Workload: f.label, Result: res})
	} else {
		bench.Report(os.Stdout, []bench.Result{res})
	}
	return 0
}

// summarize prints a table of the results file at path.
func summarize(path string, table func(io.Writer, []bench.Labelled)) int {
	file, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	defer file.Close()
	results, err := bench.ReadResults(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	table(os.Stdout, results)
	return 0
}
