package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
)

// Config is everything a daemon is started with: what pipecached's flags set (config.go) and
// what an embedder sets. Each setting has one place. A stage's config (Incoming, Sessions,
// Cache, Outgoing) holds what that stage alone uses; what the daemon gives every stage from
// one setting of its own (the limits, the processors, the logger, the encryption key) and the
// wiring between stages are set here, and Start refuses them in a stage's config.
type Config struct {
	// Store is where the data lives: the embedded store's directory (default "data"), or a
	// shared store, etcd://host:2379[,host:2379...]/prefix (OpenStore opens either).
	Store string
	// StoreWait: with a shared store, how long Start waits for it to answer (etcd may start
	// after its nodes); 0: it must answer at once.
	StoreWait time.Duration
	// OwnStore, if set, is used instead of opening Store: a store of the embedder's own, or a
	// test's. The daemon closes it.
	OwnStore nameservice.Store
	// Fsync is when the embedded store's commits reach the disk (-fsync); reported in stats.
	Fsync nameservice.Fsync
	// With a shared store (etcd), the daemon registers itself as a cluster member under this
	// address (default: the address it listens on) with a lease of MemberTTL (default 5 s): a
	// node that dies drops out of the member set that long after.
	Advertise string
	MemberTTL time.Duration
	// MaxKey and MaxValue bound keys and values: Incoming answers too_large to a request over
	// them, CachePrc bounds what a processor writes and returns. Defaults 250 bytes and 1 MiB.
	MaxKey, MaxValue int
	// CryptKey, if set, is the pre-shared AES key (16, 24 or 32 bytes) every datagram is
	// encrypted and authenticated with, AES-GCM (transport/dgram/crypt.go); clients need the
	// same key. CryptLegacyCFB uses kcp-go's older AES-CFB framing instead (a CRC32, not a MAC:
	// bits can be flipped undetected), for clients that predate AES-GCM.
	CryptKey       []byte
	CryptLegacyCFB bool

	// Processors are the processors exec may run (package processor): a custom daemon
	// registers its own into a registry and passes it here. nil: processor.Default() (the
	// built-ins hash, list and zset).
	Processors *processor.Registry
	// Threads is how many CPUs the stages' loops are meant for (-threads); it chooses which loop
	// hosts which stage (MappingFor: 1, all on one loop; 2 or 3, two loops; 4 or more, one loop
	// per stage). 0: the CPUs this process may run on (sched_getaffinity).
	Threads int
	// Loops, if set, is the mapping itself instead (-loops; ParseMapping): which loop hosts
	// which stage, e.g. "incoming+sessionmgr+cacheprc,outgoing".
	Loops string
	// Version names this build (buildinfo.Read().String()); the stats op reports it.
	Version string
	Logger  *slog.Logger // default slog.Default(); rate-limited per message (stages.LimitLogs)

	Incoming stages.IncomingConfig
	Sessions stages.SessionConfig
	Cache    stages.CacheConfig
	Outgoing stages.OutgoingConfig
}

// check refuses a stage's setting that is the daemon's (Config's doc): set there, it would be
// overwritten without a word.
func (cfg *Config) check() error {
	var errs []error
	for _, f := range []struct {
		set       bool
		field, in string
	}{
		{cfg.Incoming.MaxKey != 0 || cfg.Cache.MaxKey != 0, "MaxKey", "Incoming, Cache"},
		{cfg.Incoming.MaxValue != 0 || cfg.Cache.MaxValue != 0, "MaxValue", "Incoming, Cache"},
		{cfg.Cache.Processors != nil, "Processors", "Cache"},
		{cfg.Incoming.Logger != nil || cfg.Sessions.Logger != nil || cfg.Cache.Logger != nil ||
			cfg.Outgoing.Logger != nil, "Logger", "a stage's config"},
		{cfg.Incoming.Transport.Crypt != nil, "CryptKey", "Incoming.Transport (Crypt)"},
		{cfg.Incoming.Routes != nil || cfg.Incoming.Pipeline || cfg.Cache.Info != nil,
			"the wiring (Routes, Pipeline, Info)", "a stage's config"},
		{cfg.Incoming.Loop != nil || cfg.Sessions.Loop != nil || cfg.Cache.Loop != nil || cfg.Outgoing.Loop != nil,
			"Loops", "a stage's config (Loop)"},
	} {
		if f.set {
			errs = append(errs, fmt.Errorf("%s is set in %s: it is the daemon's (Config.%s)", f.field, f.in, f.field))
		}
	}
	return errors.Join(errs...)
}

// Daemon is a running pipecached: the stages wired together (pipeline.go) over the store.
//
//	clients ⇄ Incoming → CachePrc → Outgoing ⇄ nameservice
//	                  ←          ←
type Daemon struct {
	log       *slog.Logger
	store     nameservice.Store
	p         Pipeline
	limits    admin.Limits // resolved at start
	leave     func()       // leaves the member set; nil without a shared store
	fsync     nameservice.Fsync
	version   string
	started   time.Time
	storeKind string      // the info op's store: pebble (the embedded store), etcd, or own (Config.OwnStore)
	cluster   bool        // the store keeps a member set (etcd): nodes form a cluster
	stopping  atomic.Bool // Stop has begun (Ready reports it)
	stopOnce  sync.Once
	stopErr   error
}

// Start opens the store (OpenStore), wires the stages and starts them; ctx bounds the wait for
// a shared store. If any step fails, what was already set up is released and the error says
// which step failed and why.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("pipecached: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = stages.LimitLogs(cfg.Logger) // no client can flood the log
	if cfg.Processors == nil {
		cfg.Processors = processor.Default()
	}
	d := &Daemon{log: cfg.Logger, version: cfg.Version, fsync: cfg.Fsync, started: time.Now()}
	if err := d.start(ctx, cfg); err != nil {
		d.abort()
		return nil, fmt.Errorf("pipecached: %w", err)
	}
	return d, nil
}

// start does the work of Start; on an error, abort releases what it set up.
func (d *Daemon) start(ctx context.Context, cfg Config) (err error) {
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	d.store = st
	d.storeKind = storeKind(cfg)
	_, d.cluster = st.(Registrar)
	startVersion, err := d.store.MaxVersion()
	if err != nil {
		return err
	}
	if err = d.p.wire(cfg, d.store, startVersion, d.serverInfo, d.Info); err != nil {
		return err
	}
	d.limits = d.p.limits()
	if len(cfg.Sessions.Tokens) == 0 {
		d.log.Warn("no auth tokens configured: any client may use this daemon (set -auth-tokens or -auth-token-file)")
	}
	if err = d.p.start(); err != nil {
		return err
	}
	d.p.Outgoing.Follow(startVersion) // a shared store (etcd): changes by others reach this node
	if err = d.register(cfg); err != nil {
		return err
	}
	d.log.Info("pipecached listening", "addr", d.Addr().String(), "loops", d.p.Mapping.String(), storeAttr(cfg), "fsync", cfg.Fsync.String(),
		"memory_budget", mib(d.limits.Memory), "data_version", startVersion, "build", d.version,
		"processors", strings.Join(cfg.Processors.Names(), ","))
	return nil
}

// Registrar is a shared store that keeps a set of live members (nameservice.Etcd).
type Registrar interface {
	Register(addr string, ttl time.Duration) (leave func(), err error)
}

// register joins the cluster's member set, if the store keeps one. It is the last step of
// starting: clients route keys here as soon as they see the registration.
func (d *Daemon) register(cfg Config) error {
	r, ok := d.store.(Registrar)
	if !ok {
		return nil
	}
	addr := cfg.Advertise
	if addr == "" {
		if d.Addr().Addr().IsUnspecified() {
			return fmt.Errorf("listening on %s: set the address clients should use (-advertise)", d.Addr())
		}
		addr = d.Addr().String()
	}
	if cfg.MemberTTL <= 0 {
		cfg.MemberTTL = 5 * time.Second
	}
	leave, err := r.Register(addr, cfg.MemberTTL)
	if err != nil {
		return err
	}
	d.leave = leave
	d.log.Info("registered as a cluster member", "addr", addr, "ttl", cfg.MemberTTL)
	return nil
}

// abort releases whatever Start had set up when it failed.
func (d *Daemon) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.leave != nil {
		d.leave()
	}
	// The pipeline may be half started: no order to rely on.
	for _, l := range d.p.loops() {
		l.StopNow(ctx)
	}
	if d.store != nil {
		d.store.Close()
	}
}

// Addr returns the address clients dial.
func (d *Daemon) Addr() netip.AddrPort { return d.p.Incoming.Addr() }

// Stop shuts down without losing an acknowledged write, in pipeline order, each stage closing
// the queues it feeds once it has finished (README, "Stopping"):
//
//  1. the node leaves the cluster's member set (clients move its keys elsewhere), and Incoming
//     stops reading the network;
//  2. CachePrc's requests queue is closed: CachePrc finishes every request it was given, and once
//     nothing is in flight at Outgoing closes Outgoing's queue;
//  3. Outgoing commits what it has, stops its goroutines and closes CachePrc's completions;
//  4. CachePrc delivers its last replies and change events and closes SessionMgr's queue;
//  5. SessionMgr delivers its last replies and pushes and closes Incoming's reply queue;
//  6. Incoming sends the last replies and closes the socket; the store is closed.
//
// Calling it again returns the first call's result.
func (d *Daemon) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() { d.stopErr = d.stop(ctx) })
	return d.stopErr
}

func (d *Daemon) stop(ctx context.Context) error {
	d.stopping.Store(true)
	var errs []error
	if d.leave != nil {
		d.leave()
	}
	in := d.p.Incoming
	if err := in.Loop().Run(ctx, in.StopReading); err != nil {
		errs = append(errs, err)
	}
	if err := d.p.Cache.Requests().Close(ctx); err != nil && !errors.Is(err, loop.ErrQueueClosed) {
		errs = append(errs, err)
	}
	// Each loop also gets its control queue's pill; it ends once its producers have closed the
	// rest, in the order above.
	errs = append(errs, loop.StopAll(ctx, d.p.stopOrder()...))
	if err := d.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing store: %w", err))
	}
	err := errors.Join(errs...)
	st := in.Stats()
	d.log.Info("pipecached stopped", "requests", st.Requests, "conversations", st.Transport.Opened, "err", err)
	return err
}

// Stats returns the stages' counters.
func (d *Daemon) Stats() (stages.IncomingStats, stages.CacheStats) {
	return d.p.Incoming.Stats(), d.p.Cache.Stats()
}

// Panics returns how many handler panics the stage loops have recovered from.
func (d *Daemon) Panics() uint64 {
	var n uint64
	for _, l := range d.p.loops() {
		n += l.Stats().Panics
	}
	return n
}

// SessionStats returns SessionMgr's counters.
func (d *Daemon) SessionStats() stages.SessionStats { return d.p.Sessions.Stats() }

// Pipeline returns the daemon's stages, for tests and tools that look inside one; an embedder
// needs none of it.
func (d *Daemon) Pipeline() *Pipeline { return &d.p }

// DropConversations closes every client conversation (as if the network had cut them), for
// tests of reconnection. The sessions survive until their leases end.
func (d *Daemon) DropConversations(ctx context.Context) error {
	return d.p.Incoming.Loop().Run(ctx, d.p.Incoming.CloseConversations)
}

// SetTokens replaces the auth tokens a hello must present (none: no authentication), from any
// goroutine; sessions already accepted stay.
func (d *Daemon) SetTokens(tokens []string) { d.p.Sessions.SetTokens(tokens) }
