package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// Pipeline is a daemon's four stages, wired together. This file is the one place that decides
// which loop hosts which stage (Mapping), which queue each operation is routed to, and in what
// order the stages start and stop.
type Pipeline struct {
	Incoming *stages.Incoming
	Sessions *stages.SessionMgr
	Cache    *stages.CachePrc
	Outgoing *stages.Outgoing
	// Mapping is which loop hosts which stage, chosen at start (Config.Threads, Config.Loops).
	Mapping Mapping
	hosts   []*loop.Loop // the loops, one per entry of Mapping
}

// The stages' roles, as a Mapping names them, in pipeline order.
const (
	RoleIncoming = "incoming"
	RoleSessions = "sessionmgr"
	RoleCache    = "cacheprc"
	RoleOutgoing = "outgoing"
)

var roles = []string{RoleIncoming, RoleSessions, RoleCache, RoleOutgoing}

// Mapping says which loop hosts which stage: one entry per loop, each the roles it hosts. Every
// role is hosted by exactly one loop. Whatever the mapping, each stage keeps its type, its
// queues and its hooks; what changes is which goroutine runs them, and whether a hand-off
// between two stages is a push the same loop iteration drains (same loop: no eventfd, no
// wake-up, no context switch) or a hand-off between threads.
type Mapping [][]string

// MappingFor returns the mapping for a process that may run on threads CPUs: no more busy
// loops than cores (DESIGN.md, "Threads = cores"; BENCHMARKS.md has the measurements behind it).
//
//   - 1: every stage on one loop. A request goes from Incoming's socket through CachePrc to its
//     reply's flush in one iteration of one thread.
//   - 2 or 3: Incoming and SessionMgr on one loop (the network, and the session traffic that
//     answers at once: hello, heartbeat, subscribe), CachePrc and Outgoing on the other (the
//     data, and the store behind it). With 3, the third core is left to the store's committer
//     and workers and to Go's runtime.
//   - 4 or more: one loop per stage.
func MappingFor(threads int) Mapping {
	switch {
	case threads <= 1:
		return Mapping{{RoleIncoming, RoleSessions, RoleCache, RoleOutgoing}}
	case threads <= 3:
		return Mapping{{RoleIncoming, RoleSessions}, {RoleCache, RoleOutgoing}}
	default:
		return Mapping{{RoleIncoming}, {RoleSessions}, {RoleCache}, {RoleOutgoing}}
	}
}

// ParseMapping reads a mapping written as String writes it: loops separated by commas, the
// roles of one loop by '+', e.g. "incoming+sessionmgr,cacheprc+outgoing" (-loops).
func ParseMapping(s string) (Mapping, error) {
	var m Mapping
	for _, l := range strings.Split(s, ",") {
		m = append(m, strings.Split(strings.TrimSpace(l), "+"))
	}
	return m, m.check()
}

// check says whether every role is hosted by exactly one loop.
func (m Mapping) check() error {
	seen := map[string]int{}
	for _, l := range m {
		for _, r := range l {
			seen[r]++
		}
	}
	var errs []error
	for r, n := range seen {
		if !slices.Contains(roles, r) {
			errs = append(errs, fmt.Errorf("unknown stage %q (the stages: %s)", r, strings.Join(roles, ", ")))
		}
		if n > 1 {
			errs = append(errs, fmt.Errorf("stage %s on %d loops", r, n))
		}
	}
	for _, r := range roles {
		if seen[r] == 0 {
			errs = append(errs, fmt.Errorf("stage %s on no loop", r))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("loops %q: %w", m.String(), errors.Join(errs...))
	}
	return nil
}

// String writes the mapping as ParseMapping reads it, each loop's roles in pipeline order.
func (m Mapping) String() string {
	loops := make([]string, len(m))
	for i := range m {
		loops[i] = loopName(m[i])
	}
	return strings.Join(loops, ",")
}

// loopName names a loop after the roles it hosts, in pipeline order: "incoming+sessionmgr".
func loopName(hosted []string) string {
	var in []string
	for _, r := range roles {
		if slices.Contains(hosted, r) {
			in = append(in, r)
		}
	}
	return strings.Join(in, "+")
}

// chooseMapping resolves Config.Loops and Config.Threads into the mapping the daemon runs.
func chooseMapping(cfg *Config) (Mapping, error) {
	if cfg.Loops != "" {
		return ParseMapping(cfg.Loops)
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = availableCPUs()
	}
	return MappingFor(threads), nil
}

// availableCPUs returns how many CPUs this process may run on (sched_getaffinity: what taskset
// or a container's cpuset allows), at least 1.
func availableCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return max(set.Count(), 1)
}

// makeLoops makes one loop per entry of the mapping. Nothing runs until the stages start.
func (p *Pipeline) makeLoops(cfg *Config) error {
	for _, hosted := range p.Mapping {
		l, err := loop.New(loop.Config{Name: loopName(hosted), Logger: cfg.Logger, PipelineClose: true})
		if err != nil {
			return err
		}
		p.hosts = append(p.hosts, l)
	}
	return nil
}

// host returns the loop that hosts role.
func (p *Pipeline) host(role string) *loop.Loop {
	for i, hosted := range p.Mapping {
		if slices.Contains(hosted, role) {
			return p.hosts[i]
		}
	}
	panic("daemon: no loop hosts " + role) // Mapping.check rules it out
}

// Operations and the stage that serves them: data operations go to CachePrc, session
// operations to SessionMgr; Incoming answers ping and echo itself.
var (
	dataOps = []task.Op{task.OpGet, task.OpMGet, task.OpSet, task.OpAdd, task.OpReplace, task.OpCAS,
		task.OpDelete, task.OpIncr, task.OpTouch, task.OpStats, task.OpExec,
		task.OpScan, task.OpTTL, task.OpType, task.OpExists}
	sessionOps = []task.Op{task.OpHello, task.OpHeartbeat, task.OpGoodbye, task.OpSubscribe,
		task.OpUnsubscribe, task.OpAck}
)

// wire makes the loops of the mapping and the stages from cfg over store (whose data is at
// startVersion), and connects them; info is the rest of the server's state for the stats op.
// Nothing runs until start. On an error, what was already made is in p (loops stops it).
//
// The stages are made, and so hosted, in the order a loop drains their queues: CachePrc,
// Outgoing, SessionMgr, Incoming. On a loop that hosts several, a request that Incoming takes
// from the socket is handled by CachePrc (or SessionMgr) and its reply by Incoming in the same
// iteration, and the reply leaves in that iteration's flush.
func (p *Pipeline) wire(cfg Config, store nameservice.Store, startVersion uint64, info func() stages.ServerInfo,
	infoText func(string) ([]byte, error)) (err error) {
	if p.Mapping, err = chooseMapping(&cfg); err != nil {
		return err
	}
	if err = p.makeLoops(&cfg); err != nil {
		return err
	}
	cfg.Incoming.Logger, cfg.Sessions.Logger, cfg.Cache.Logger, cfg.Outgoing.Logger = cfg.Logger, cfg.Logger, cfg.Logger, cfg.Logger
	cfg.Incoming.Loop, cfg.Sessions.Loop = p.host(RoleIncoming), p.host(RoleSessions)
	cfg.Cache.Loop, cfg.Outgoing.Loop = p.host(RoleCache), p.host(RoleOutgoing)
	cfg.Incoming.MaxKey, cfg.Incoming.MaxValue = cfg.MaxKey, cfg.MaxValue
	cfg.Cache.MaxKey, cfg.Cache.MaxValue = cfg.MaxKey, cfg.MaxValue
	cfg.Cache.Processors, cfg.Cache.Info = cfg.Processors, info
	cfg.Incoming.Info = infoText // answered on Incoming's loop, never CachePrc's
	if len(cfg.CryptKey) > 0 {
		newCrypt := kcp.NewAESGCMCrypt
		if cfg.CryptLegacyCFB {
			newCrypt = kcp.NewAESBlockCrypt
		}
		if cfg.Incoming.Transport.Crypt, err = newCrypt(cfg.CryptKey); err != nil {
			return fmt.Errorf("encryption key: %w", err)
		}
	}

	cfg.Incoming.Pipeline = true // SessionMgr closes its reply queue when stopping
	if p.Cache, err = stages.NewCachePrc(cfg.Cache, startVersion); err != nil {
		return err
	}
	if p.Outgoing, err = stages.NewOutgoing(cfg.Outgoing, store, p.Cache.Completions()); err != nil {
		return err
	}
	if p.Sessions, err = stages.NewSessionMgr(cfg.Sessions); err != nil {
		return err
	}
	cfg.Incoming.Vouch = p.Sessions.Vouches // a token or a resume is admitted ahead of strangers
	if p.Incoming, err = stages.NewIncoming(cfg.Incoming); err != nil {
		return err
	}
	for _, op := range dataOps {
		p.Incoming.SetRoute(op, p.Cache.Requests())
	}
	for _, op := range sessionOps {
		p.Incoming.SetRoute(op, p.Sessions.Requests())
	}
	p.Cache.Connect(p.Outgoing.Requests(), p.Outgoing.Commits(), p.Incoming.Replies())
	p.Sessions.Connect(p.Incoming.Replies())
	p.Cache.ConnectEvents(p.Sessions.Requests(), p.Sessions.HasSubscribers, p.Sessions.EventBudget())
	return nil
}

// start runs the stages, the store's end first. A loop runs once every stage it hosts has
// started, so each loop finds the stages it feeds started.
func (p *Pipeline) start() error {
	for _, start := range []func() error{p.Outgoing.Start, p.Cache.Start, p.Sessions.Start, p.Incoming.Start} {
		if err := start(); err != nil {
			return err
		}
	}
	return nil
}

// loops returns the loops of the mapping, in its order (those made before a failed start).
func (p *Pipeline) loops() []*loop.Loop { return p.hosts }

// stopOrder returns the loops in the order Stop asks them to end: the one that hosts the store's
// end first. Each ends once the stages feeding it have closed its queues, whatever the order.
func (p *Pipeline) stopOrder() []*loop.Loop {
	ls := slices.Clone(p.hosts)
	slices.Reverse(ls)
	return ls
}

// limits returns the limits the stages apply, with their defaults resolved.
func (p *Pipeline) limits() admin.Limits {
	in, c := p.Incoming.Config(), p.Cache.Config()
	l := admin.Limits{MaxKey: in.MaxKey, MaxValue: in.MaxValue, MaxConns: in.Transport.MaxConns, Memory: c.Memory}
	if l.MaxConns <= 0 {
		l.MaxConns = defaultMaxConns
	}
	return l
}
