package stages

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

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// DaemonConfig is everything pipecached is started with.
type DaemonConfig struct {
	DataDir  string            // the embedded store's directory; default "./data"
	Store    nameservice.Store // if set, used instead of opening DataDir (the daemon closes it)
	Incoming IncomingConfig
	Sessions SessionConfig
	Cache    CacheConfig
	Outgoing OutgoingConfig
	// With a shared store (etcd), the daemon registers itself as a cluster member under this
	// address (default: the address it listens on) with a lease of MemberTTL (default 5 s): a
	// node that dies drops out of the member set that long after.
	Advertise string
	MemberTTL time.Duration
	// CryptKey, if set, is the pre-shared AES key (16, 24 or 32 bytes) every datagram is
	// encrypted with (transport/dgram/crypt.go); clients need the same key.
	CryptKey []byte
	// Processors are the processors exec may run (package processor): a custom daemon
	// registers its own into a registry and passes it here. nil: processor.Default() (the
	// built-ins hash, list and zset). Cache.Processors, if set, wins.
	Processors *processor.Registry
	// Version names this build (buildinfo.Read().String()); the stats op reports it.
	Version string
	Logger  *slog.Logger
}

// Registrar is a shared store that keeps a set of live members (nameservice.Etcd).
type Registrar interface {
	Register(addr string, ttl time.Duration) (leave func(), err error)
}

// dataOps are the operations CachePrc serves.
var dataOps = []task.Op{task.OpGet, task.OpMGet, task.OpSet, task.OpAdd, task.OpReplace, task.OpCAS,
	task.OpDelete, task.OpIncr, task.OpTouch, task.OpStats, task.OpExec}

// Daemon is a running pipecached: the stages wired together over the embedded store.
//
//	clients ⇄ Incoming → CachePrc → Outgoing ⇄ nameservice
//	                  ←          ←
type Daemon struct {
	log      *slog.Logger
	store    nameservice.Store
	incoming *Incoming
	sessions *SessionMgr
	cache    *CachePrc
	outgoing *Outgoing
	leave    func() // leaves the member set; nil without a shared store
	version  string
	started  time.Time
	stopping atomic.Bool // Stop has begun (Ready reports it)
	stopOnce sync.Once
	stopErr  error
}

// StartDaemon opens the store, wires the stages and starts them. If any step fails, what was
// already set up is released and the error says which step failed and why.
func StartDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = limitLogs(cfg.Logger) // no client can flood the log (logs.go)
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	cfg.Incoming.Logger, cfg.Cache.Logger, cfg.Outgoing.Logger = cfg.Logger, cfg.Logger, cfg.Logger
	cfg.Sessions.Logger = cfg.Logger
	cfg.Cache.MaxKey, cfg.Cache.MaxValue = cfg.Incoming.MaxKey, cfg.Incoming.MaxValue
	if cfg.Cache.Processors == nil {
		cfg.Cache.Processors = cfg.Processors
	}
	d := &Daemon{log: cfg.Logger, version: cfg.Version, started: time.Now()}
	cfg.Cache.Info = d.serverInfo
	if err := d.start(cfg); err != nil {
		d.abort()
		return nil, fmt.Errorf("pipecached: %w", err)
	}
	return d, nil
}

// start does the work of StartDaemon; on an error, abort releases what it set up.
func (d *Daemon) start(cfg DaemonConfig) (err error) {
	d.store = cfg.Store
	if d.store == nil {
		st, err := nameservice.Open(cfg.DataDir)
		if err != nil {
			return err // not through d.store: a nil *Bolt in an interface is not a nil Store
		}
		d.store = st
	}
	startVersion, err := d.store.MaxVersion()
	if err != nil {
		return err
	}
	if d.cache, err = NewCachePrc(cfg.Cache, startVersion); err != nil {
		return err
	}
	if d.outgoing, err = NewOutgoing(cfg.Outgoing, d.store, d.cache.Completions()); err != nil {
		return err
	}
	if d.sessions, err = NewSessionMgr(cfg.Sessions); err != nil {
		return err
	}
	if len(cfg.CryptKey) > 0 {
		if cfg.Incoming.Transport.Crypt, err = kcp.NewAESBlockCrypt(cfg.CryptKey); err != nil {
			return fmt.Errorf("encryption key: %w", err)
		}
	}
	cfg.Incoming.Pipeline = true // SessionMgr closes its reply queue when stopping
	if d.incoming, err = NewIncoming(cfg.Incoming); err != nil {
		return err
	}
	for _, op := range dataOps {
		d.incoming.SetRoute(op, d.cache.Requests())
	}
	for _, op := range []task.Op{task.OpHello, task.OpHeartbeat, task.OpGoodbye, task.OpSubscribe, task.OpUnsubscribe, task.OpAck} {
		d.incoming.SetRoute(op, d.sessions.Requests())
	}
	d.cache.Connect(d.outgoing.Requests(), d.incoming.Replies())
	d.sessions.Connect(d.incoming.Replies())
	d.cache.ConnectEvents(d.sessions.Requests(), d.sessions.HasSubscribers, d.sessions.EventBudget())
	if len(cfg.Sessions.Tokens) == 0 {
		d.log.Warn("no auth tokens configured: any client may use this daemon (set -auth-tokens or -auth-token-file)")
	}
	for _, start := range []func() error{d.outgoing.Loop().Start, d.cache.Start, d.sessions.Start, d.incoming.Start} {
		if err = start(); err != nil {
			return err
		}
	}
	d.outgoing.Follow(startVersion) // a shared store (etcd): changes by others reach this node
	if err = d.register(cfg); err != nil {
		return err
	}
	d.log.Info("pipecached listening", "addr", d.incoming.Addr().String(), "data", cfg.DataDir,
		"memory", cfg.Cache.Memory, "version", startVersion, "processors", strings.Join(d.cache.exec.procs.Names(), ","))
	return nil
}

// register joins the cluster's member set, if the store keeps one. It is the last step of
// starting: clients route keys here as soon as they see the registration.
func (d *Daemon) register(cfg DaemonConfig) error {
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

// abort releases whatever StartDaemon had set up when it failed.
func (d *Daemon) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.leave != nil {
		d.leave()
	}
	// The pipeline may be half started: no order to rely on.
	if d.incoming != nil {
		d.incoming.Loop().StopNow(ctx)
	}
	if d.sessions != nil {
		d.sessions.Loop().StopNow(ctx)
	}
	if d.cache != nil {
		d.cache.Loop().StopNow(ctx)
	}
	if d.outgoing != nil {
		d.outgoing.Loop().StopNow(ctx)
	}
	if d.store != nil {
		d.store.Close()
	}
}

// stageFinished is told, in tests, when each stage has done its part of a stop.
var stageFinished = func(stage string) {}

// Addr returns the address clients dial.
func (d *Daemon) Addr() netip.AddrPort { return d.incoming.Addr() }

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
	if err := d.incoming.Loop().Run(ctx, d.incoming.StopReading); err != nil {
		errs = append(errs, err)
	}
	if err := d.cache.Requests().Close(ctx); err != nil && !errors.Is(err, loop.ErrQueueClosed) {
		errs = append(errs, err)
	}
	// Each loop also gets its control queue's pill; it ends once its producers have closed the
	// rest, in the order above.
	errs = append(errs, loop.StopAll(ctx, d.outgoing.Loop(), d.cache.Loop(), d.sessions.Loop(), d.incoming.Loop()))
	if err := d.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing store: %w", err))
	}
	err := errors.Join(errs...)
	st := d.incoming.Stats()
	d.log.Info("pipecached stopped", "requests", st.Requests, "conversations", st.Transport.Opened, "err", err)
	return err
}

// Stats returns the stages' counters.
func (d *Daemon) Stats() (IncomingStats, CacheStats) { return d.incoming.Stats(), d.cache.Stats() }

// Panics returns how many handler panics the stage loops have recovered from.
func (d *Daemon) Panics() uint64 {
	var n uint64
	for _, l := range []*loop.Loop{d.incoming.Loop(), d.sessions.Loop(), d.cache.Loop(), d.outgoing.Loop()} {
		n += l.Stats().Panics
	}
	return n
}

// SessionStats returns SessionMgr's counters.
func (d *Daemon) SessionStats() SessionStats { return d.sessions.Stats() }

// DropConversations closes every client conversation (as if the network had cut them), for
// tests of reconnection. The sessions survive until their leases end.
func (d *Daemon) DropConversations(ctx context.Context) error {
	return d.incoming.Loop().Run(ctx, d.incoming.srv.CloseAll)
}
