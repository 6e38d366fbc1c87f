// Command pipecache-bench is a load generator for pipecached, and for Redis and memcached with
// the identical workload (so the client side costs the same for every server).
//
//	pipecache-bench -server pipecache -addr 127.0.0.1:7070 -sessions 50 -inflight 1 \
//	    -mix get=90,set=10 -keys 100000 -value 100 -duration 10s -preload -warmup 2s
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
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/pipecache/pipecache/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg bench.Config
	fs := flag.NewFlagSet("pipecache-bench", flag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", "pipecache", "pipecache, pipecache-cluster (-addr: etcd://host:2379/prefix or node,node,...), redis or memcached")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:7070", "server address")
	fs.StringVar(&cfg.Token, "token", os.Getenv("PIPECACHE_TOKEN"), "pipecache auth token (env PIPECACHE_TOKEN)")
	fs.IntVar(&cfg.Sessions, "sessions", 50, "connections (sessions)")
	fs.IntVar(&cfg.InFlight, "inflight", 1, "requests in flight per session")
	fs.StringVar(&cfg.Mix, "mix", "get=90,set=10", "operation weights: get, set, mget, incr, cas")
	fs.IntVar(&cfg.Keys, "keys", 100_000, "key space")
	fs.StringVar(&cfg.Dist, "dist", "uniform", "key distribution: uniform or zipf")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", 1.1, "Zipf exponent (> 1)")
	fs.IntVar(&cfg.Value, "value", 100, "value size in bytes")
	fs.IntVar(&cfg.MGetKeys, "mget-keys", 10, "keys per mget")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time (0: until -requests)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "measured requests (0: until -duration)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured run before measuring")
	fs.BoolVar(&cfg.Preload, "preload", true, "set every key before the warm-up, so gets hit")
	fs.StringVar(&cfg.Prefix, "prefix", "", "key prefix")
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process id, to report its CPU per operation")
	fs.IntVar(&cfg.NearCache, "near-cache", 0, "give each pipecache session a near cache of this many keys (0: off)")
	fs.IntVar(&cfg.Subscribers, "subscribers", 0, "extra pipecache sessions subscribed to every key (loads the notification path)")
	asJSON := fs.Bool("json", false, "print the result as JSON (for scripts)")
	quiet := fs.Bool("quiet", false, "no progress line")
	label := fs.String("label", "", "with -json: the workload's name, added to the result")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load generator to this file (go tool pprof)")
	summarize := fs.String("summarize", "", "print the comparison table of a JSON-lines results file, and exit")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println(versionLine())
		return 0
	}
	if *summarize != "" {
		f, err := os.Open(*summarize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
			return 1
		}
		defer f.Close()
		results, err := bench.ReadResults(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
			return 1
		}
		bench.Summarize(os.Stdout, results)
		return 0
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pipecache-bench: -cpuprofile:", err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := bench.Open(cfg.Server, cfg.Addr, cfg.Sessions, cfg.Token, cfg.NearCache)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	defer d.Close()
	var progress io.Writer = os.Stderr
	if *quiet {
		progress = nil
	}
	res, err := bench.Run(ctx, cfg, d, progress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(bench.Labelled{Workload: *label, Result: res})
	} else {
		bench.Report(os.Stdout, []bench.Result{res})
	}
	return 0
}

// versionLine says which build this is, from the build information the Go toolchain embeds
// (the module version, the VCS revision and time, uncommitted changes, the Go version), in the
// same form as pipecachectl -version.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("pipecache-bench version unknown (no build information), %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	parts := []string{"pipecache-bench version " + info.Main.Version}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "+modified"
		}
		parts = append(parts, "revision "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	parts = append(parts, info.GoVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, ", ")
}
