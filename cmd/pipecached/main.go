// Command pipecached is the pipecache daemon.
//
// Every flag can also be set from the environment: -listen from PIPECACHE_LISTEN, and so on
// (upper case, dashes as underscores, prefixed PIPECACHE_). Flags given on the command line win.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport/wire"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("pipecached", flag.ContinueOnError)
	var cfg stages.DaemonConfig
	fs.StringVar(&cfg.Incoming.Transport.Addr, "listen", "127.0.0.1:7070", "UDP address to serve on")
	fs.IntVar(&cfg.Incoming.MaxKey, "max-key", 250, "largest key, in bytes")
	fs.IntVar(&cfg.Incoming.MaxValue, "max-value", 1<<20, "largest value, in bytes")
	fs.DurationVar(&cfg.Incoming.Transport.IdleTimeout, "idle-timeout", 60*time.Second, "drop a conversation silent this long")
	fs.IntVar(&cfg.Incoming.Transport.MaxConns, "max-conns", 100_000, "conversations at most")
	fs.StringVar(&cfg.DataDir, "data-dir", "data", "directory of the embedded store")
	storeURL := fs.String("store", "", "a shared store instead of the embedded one: etcd://host:2379[,host:2379...]/prefix")
	fs.StringVar(&cfg.Advertise, "advertise", "", "with -store etcd: the address clients reach this node at (default: -listen)")
	fs.DurationVar(&cfg.MemberTTL, "member-ttl", 5*time.Second, "with -store etcd: a node that dies leaves the member set this long after")
	storeWait := fs.Duration("store-wait", time.Minute, "with -store etcd: at start, wait this long for etcd to answer before giving up")
	fs.BoolVar(&cfg.Cache.StaleReads, "stale-reads", false, "with -store etcd: while etcd is unreachable, serve cached keys (flagged stale) instead of 'unavailable'")
	memoryMB := fs.Int64("memory-mb", 256, "memory budget of the cache, in MiB (keys, values, overhead)")
	fs.DurationVar(&cfg.Cache.NegativeTTL, "negative-ttl", 2*time.Second, "how long a key absent from the store is remembered as absent")
	fs.DurationVar(&cfg.Cache.StoreTimeout, "store-timeout", 2*time.Second, "answer 'timeout' if the store takes longer")
	fs.IntVar(&cfg.Outgoing.Workers, "store-workers", 8, "goroutines serving store loads")
	fs.BoolVar(&cfg.Cache.NoNegativeCache, "no-negative-cache", false, "kill switch: do not cache absent keys")
	fs.BoolVar(&cfg.Cache.NoTTLJitter, "no-ttl-jitter", false, "kill switch: use TTLs exactly as given")
	fs.BoolVar(&cfg.Outgoing.NoGroupCommit, "no-group-commit", false, "kill switch: commit writes one at a time")
	tokens := fs.String("auth-tokens", "", "comma-separated tokens a client must present in its hello (none: no authentication)")
	tokenFile := fs.String("auth-token-file", "", "file of accepted tokens, one per line")
	keyFile := fs.String("crypt-key-file", "", "encrypt every datagram with the AES key in this file (32, 48 or 64 hex digits); clients need the same key")
	fs.DurationVar(&cfg.Sessions.DefaultHeartbeat, "heartbeat", 2*time.Second, "heartbeat interval for clients that propose none; a session silent for 3 intervals expires")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	level := fs.String("log-level", "info", "debug, info, warn or error (SIGUSR1: debug; SIGUSR2: back to this)")
	if err := parse(fs, args); err != nil {
		return 2
	}
	var lv slog.LevelVar
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "pipecached: -log-level: %v\n", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &lv}))
	cfg.Cache.Memory = *memoryMB << 20
	var err error
	if cfg.Sessions.Tokens, err = loadTokens(*tokens, *tokenFile); err != nil {
		fmt.Fprintf(os.Stderr, "pipecached: %v\n", err)
		return 2
	}
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err == nil {
			cfg.CryptKey, err = wire.ParseKey(b)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pipecached: -crypt-key-file: %v\n", err)
			return 2
		}
	}
	go levelSignals(&lv)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pipecached: -cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "pipecached: -cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}

	// Signals first: a supervisor may send SIGTERM as soon as we say we are listening.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *storeURL != "" {
		// etcd's own deadline comes before CachePrc's, so that a request that cannot reach etcd
		// is answered "unavailable" (the store is down) rather than "timeout".
		st, err := nameservice.OpenEtcd(*storeURL, cfg.Cache.StoreTimeout*3/4, cfg.Logger)
		if err != nil {
			cfg.Logger.Error("store", "err", err)
			return 2
		}
		cfg.Store, cfg.DataDir = st, *storeURL
		if err := waitForStore(ctx, st, *storeWait, cfg.Logger); err != nil {
			cfg.Logger.Error("store", "err", err)
			st.Close()
			return 1
		}
	}
	d, err := stages.StartDaemon(cfg)
	if err != nil {
		cfg.Logger.Error("start", "err", err)
		return 1
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Stop(sctx); err != nil {
		return 1
	}
	return 0
}

// waitForStore waits until the store answers (etcd may start after its nodes), for up to
// wait, or until ctx ends.
func waitForStore(ctx context.Context, st nameservice.Store, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	backoff := 100 * time.Millisecond
	for {
		_, err := st.MaxVersion()
		if err == nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		log.Warn("store not answering; waiting for it", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for the store: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// loadTokens gathers auth tokens from the flag (or PIPECACHE_AUTH_TOKENS) and the token file.
func loadTokens(list, file string) ([]string, error) {
	var tokens []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-auth-token-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				tokens = append(tokens, t)
			}
		}
	}
	return tokens, nil
}

// levelSignals changes the log level while running: SIGUSR1 to debug, SIGUSR2 back to the level
// the daemon was started with.
func levelSignals(lv *slog.LevelVar) {
	start := lv.Level()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	for sig := range ch {
		if sig == syscall.SIGUSR1 {
			lv.Set(slog.LevelDebug)
		} else {
			lv.Set(start)
		}
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Info("log level changed", "level", lv.Level().String())
	}
}

// parse reads flags, letting PIPECACHE_* environment variables set those not on the command
// line.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "PIPECACHE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
				fmt.Fprintf(os.Stderr, "pipecached: %v\n", err)
			}
		}
	})
	return err
}
