package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pipecache/pipecache/nameservice"
)

// envPrefix prefixes every flag's environment variable: -data-dir is PIPECACHE_DATA_DIR.
const envPrefix = "PIPECACHE"

// config is everything pipecached is started with: the daemon's own configuration and what
// the command does around it.
type config struct {
	daemon     Config
	storeURL   string
	memoryMB   int64
	limitMB    int64
	tokens     string
	tokenFile  string
	keyFile    string
	admin      string
	logLevel   string
	logFormat  string
	cpuProfile string
	configFile string
	version    bool
	fixed      map[string]bool // set on the command line or in the environment: a reload keeps them
}

// newFlagSet defines every flag, writing into cfg.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("pipecached", flag.ContinueOnError)
	d := &cfg.daemon
	fs.StringVar(&d.Incoming.Transport.Addr, "listen", "127.0.0.1:7070", "UDP address to serve on")
	fs.IntVar(&d.MaxKey, "max-key", 250, "largest key, in bytes")
	fs.Var(newSizeInt(&d.MaxValue, 1<<20), "max-value", "largest value")
	fs.DurationVar(&d.Incoming.Transport.IdleTimeout, "idle-timeout", 60*time.Second, "drop a conversation no session uses (after a goodbye) silent this long; a session's lease ends its own")
	fs.IntVar(&d.Incoming.Transport.MaxConns, "max-conns", 100_000, "conversations at most")
	fs.IntVar(&d.Incoming.Transport.PendingRate, "conn-rate", 2000, "new conversations admitted per second, from all sources")
	fs.IntVar(&d.Incoming.Transport.SourceRate, "source-conn-rate", 0, "new conversations admitted per second from one source address (0: -conn-rate/8, at least 16)")
	fs.Var(newSize(&d.Incoming.Transport.PendingMemory, 32<<20), "pending-memory", "what all conversations still waiting for their hello may hold together (each counts 40 KiB); the oldest is dropped for a new one")
	fs.DurationVar(&d.Incoming.Transport.AckDelay, "ack-delay", 5*time.Millisecond, "how long a request's ACK may wait to ride with its reply (negative: send ACKs at once)")
	fs.StringVar(&d.Store, "data-dir", "data", "directory of the embedded store (a directory of a version that used bbolt is migrated at start)")
	fs.Var(&d.Fsync, "fsync", "when an acknowledged write is on disk: always (before the reply), everysec (written to the OS before the reply, synced every second: survives a crash of the daemon, a power failure may lose about the last second) or no (written to the OS; the OS syncs it when it chooses)")
	fs.StringVar(&cfg.storeURL, "store", "", "a shared store instead of the embedded one: etcd://host:2379[,host:2379...]/prefix")
	fs.StringVar(&d.Advertise, "advertise", "", "with -store etcd: the address clients reach this node at (default: -listen)")
	fs.DurationVar(&d.MemberTTL, "member-ttl", 5*time.Second, "with -store etcd: a node that dies leaves the member set this long after")
	fs.DurationVar(&d.StoreWait, "store-wait", time.Minute, "with -store etcd: at start, wait this long for etcd to answer before giving up")
	fs.BoolVar(&d.Cache.StaleReads, "stale-reads", false, "with -store etcd: while etcd is unreachable, serve cached keys (flagged stale) instead of 'unavailable'")
	fs.Int64Var(&cfg.memoryMB, "memory-mb", 256, "memory budget of the cache, in MiB (keys, values, overhead)")
	fs.Int64Var(&cfg.limitMB, "memory-limit-mb", 0, "the Go runtime's soft memory limit, in MiB: the garbage collector works harder as the process nears it, so that garbage does not double what -memory-mb and the other budgets hold (0: -memory-mb × 5/4 + 128; -1: none; the GOMEMLIMIT environment variable, if set, wins)")
	fs.DurationVar(&d.Cache.NegativeTTL, "negative-ttl", 2*time.Second, "how long a key absent from the store is remembered as absent")
	fs.DurationVar(&d.Cache.StoreTimeout, "store-timeout", 2*time.Second, "answer 'timeout' if the store takes longer")
	fs.IntVar(&d.Outgoing.Workers, "store-workers", 8, "goroutines serving store loads")
	fs.IntVar(&d.Threads, "threads", 0, "CPUs the stages' loops are meant for: 1 runs every stage on one loop, 2 or 3 on two, 4 or more one loop per stage (README, \"Threads\"); 0: the CPUs this process may run on")
	fs.StringVar(&d.Loops, "loops", "", "which loop hosts which stage, instead of -threads: loops separated by ',', a loop's stages by '+', e.g. incoming+sessionmgr,cacheprc+outgoing")
	fs.DurationVar(&d.Cache.ProcBudget, "proc-budget", 10*time.Millisecond, "time budget of one processor call (exec), checked after it returns: a slower call fails with over_budget and changes nothing; 0: none")
	fs.Int64Var(&d.Cache.ProcMaxSteps, "proc-max-steps", 0, "step budget of one processor call (entries read, compared, copied or written), checked before the work: over it, over_budget; 0: none")
	fs.BoolVar(&d.Cache.NoNegativeCache, "no-negative-cache", false, "kill switch: do not cache absent keys")
	fs.BoolVar(&d.Cache.NoTTLJitter, "no-ttl-jitter", false, "kill switch: use TTLs exactly as given")
	fs.BoolVar(&d.Incoming.Transport.NoCompaction, "no-idle-compaction", false, "kill switch: idle conversations keep their KCP state and buffers (about 20 KB each)")
	fs.BoolVar(&d.Outgoing.NoGroupCommit, "no-group-commit", false, "kill switch: commit writes one at a time")
	fs.StringVar(&cfg.tokens, "auth-tokens", "", "comma-separated tokens a client must present in its hello (none: no authentication)")
	fs.StringVar(&cfg.tokenFile, "auth-token-file", "", "file of accepted tokens, one per line")
	fs.StringVar(&cfg.keyFile, "crypt-key-file", "", "encrypt and authenticate every datagram (AES-GCM) with the AES key in this file (32, 48 or 64 hex digits); clients need the same key")
	fs.BoolVar(&d.CryptLegacyCFB, "crypt-legacy-cfb", false, "with -crypt-key-file: kcp-go's older AES-CFB framing instead of AES-GCM, for clients that predate it (not authenticated: a CRC32, not a MAC)")
	fs.Var(newSize(&d.Sessions.PushBytes, 4<<20), "push-bytes", "values one session may hold in pushes not yet acknowledged; beyond, pushes go without values")
	fs.Var(newSize(&d.Sessions.PushMemory, 256<<20), "push-memory", "values all sessions together may hold in pushes not yet acknowledged")
	fs.IntVar(&d.Sessions.MaxSubscriptions, "max-subscriptions", 10_000, "keys and prefixes one session may subscribe to")
	fs.DurationVar(&d.Sessions.DefaultHeartbeat, "heartbeat", 2*time.Second, "heartbeat interval for clients that propose none (the Go SDK proposes 1 s); a session silent for 3 intervals expires")
	fs.DurationVar(&d.Incoming.SlowLog, "slowlog", 10*time.Millisecond, "keep requests that take at least this long (decoded to replied) in the slow log (pipecachectl slowlog, /slowlog); 0: none")
	fs.IntVar(&d.Incoming.SlowLogLen, "slowlog-len", 128, "how many of the most recent slow requests the slow log keeps")
	fs.StringVar(&cfg.admin, "admin", "127.0.0.1", "admin HTTP endpoint (/metrics, /healthz, /readyz, /debug/pprof/) on this TCP `address`; a host alone takes -listen's port number; empty or 'off': none")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error (SIGUSR1: debug; SIGUSR2: back to this)")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "text (key=value) or json, one line per event")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	fs.StringVar(&cfg.configFile, "config", "", "read flags from this TOML `file` (keys: the flags' names); the command line and the environment win over it; SIGHUP reloads -log-level, -log-format and the auth tokens from it")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	return fs
}

// parseConfig reads the command line, then PIPECACHE_* environment variables for flags not on
// it, then the -config file for flags set by neither (layers.go; BurntSushi/toml reads the file,
// tomlfile.go). -h prints the flags by purpose (usage.go) to w; a bad flag is one line of error,
// not the whole of -h.
func parseConfig(args []string, w io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg)
	fs.SetOutput(io.Discard) // the flag package's own messages: ours say more (usageHint)
	fs.Usage = func() {}
	fixed, err := parseLayers(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(fs, w)
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w (%s)", err, usageHint)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (every setting is a flag: %s)", fs.Args(), usageHint)
	}
	cfg.fixed = fixed
	return cfg, cfg.resolve()
}

// resolve turns the flags' values into the daemon's configuration and checks what no single
// flag can check.
func (cfg *config) resolve() error {
	cfg.daemon.Cache.Memory = cfg.memoryMB << 20
	if cfg.daemon.Loops != "" {
		if _, err := ParseMapping(cfg.daemon.Loops); err != nil {
			return fmt.Errorf("-loops: %w", err)
		}
	}
	if cfg.storeURL != "" {
		if _, _, err := nameservice.EtcdURL(cfg.storeURL); err != nil {
			return fmt.Errorf("-store: %w", err)
		}
		cfg.daemon.Store = cfg.storeURL // instead of -data-dir
		if cfg.daemon.Fsync != nameservice.FsyncAlways {
			return fmt.Errorf("-fsync %s: only the embedded store (-data-dir) offers it; etcd (-store) syncs every commit itself", cfg.daemon.Fsync)
		}
	}
	switch c := &cfg.daemon.Cache; {
	case c.ProcBudget < 0 || c.ProcMaxSteps < 0:
		return fmt.Errorf("-proc-budget %v, -proc-max-steps %d: a budget is not negative (0: none)", c.ProcBudget, c.ProcMaxSteps)
	case c.ProcBudget == 0:
		c.ProcBudget = -1 // the flag's 0 is none; the stage's 0 is its default
	}
	if in := &cfg.daemon.Incoming; in.SlowLog <= 0 {
		in.SlowLog = -1 // likewise
	}
	return nil
}

// adminAddr resolves -admin: "" (or "off") is no endpoint; a host without a port takes the
// port number of -listen (TCP and UDP ports are separate, so it is free, and nodes started on
// different -listen ports get different admin ports).
func adminAddr(admin, listen string) (string, error) {
	if admin == "" || admin == "off" {
		return "", nil
	}
	if _, _, err := net.SplitHostPort(admin); err == nil {
		return admin, nil
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("-admin %q has no port, and -listen %q gives none: %w", admin, listen, err)
	}
	return net.JoinHostPort(strings.Trim(admin, "[]"), port), nil
}

// memoryLimit returns the soft memory limit (runtime/debug.SetMemoryLimit) pipecached sets, in
// bytes, or -1 for none: -memory-limit-mb, by default -memory-mb × 5/4 + 128 MiB, so that the
// heap's garbage (the runtime lets the heap grow to twice what is live by default) stays
// within a quarter of the cache's budget and a fixed allowance for the other budgets' usual
// use (README, "Memory"). gomemlimit is the GOMEMLIMIT environment variable: if set, the
// runtime has applied it already and it wins.
func (c *config) memoryLimit(gomemlimit string) int64 {
	switch {
	case gomemlimit != "" || c.limitMB < 0:
		return -1
	case c.limitMB > 0:
		return c.limitMB << 20
	}
	return (c.memoryMB*5/4 + 128) << 20
}
