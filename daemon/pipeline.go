package daemon

import (
	"fmt"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// Pipeline is a daemon's four stages, wired together. This file is the one place that decides
// which loop hosts which stage (today each stage its own, made by the stage), which queue each
// operation is routed to, and in what order the loops start and stop.
type Pipeline struct {
	Incoming *stages.Incoming
	Sessions *stages.SessionMgr
	Cache    *stages.CachePrc
	Outgoing *stages.Outgoing
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

// wire makes the stages from cfg over store (whose data is at startVersion) and connects them;
// info is the rest of the server's state for the stats op. Nothing runs until start. On an
// error, the stages already made are in p (loops stops them).
func (p *Pipeline) wire(cfg Config, store nameservice.Store, startVersion uint64, info func() stages.ServerInfo) (err error) {
	cfg.Incoming.Logger, cfg.Sessions.Logger, cfg.Cache.Logger, cfg.Outgoing.Logger = cfg.Logger, cfg.Logger, cfg.Logger, cfg.Logger
	cfg.Incoming.MaxKey, cfg.Incoming.MaxValue = cfg.MaxKey, cfg.MaxValue
	cfg.Cache.MaxKey, cfg.Cache.MaxValue = cfg.MaxKey, cfg.MaxValue
	cfg.Cache.Processors, cfg.Cache.Info = cfg.Processors, info
	if len(cfg.CryptKey) > 0 {
		if cfg.Incoming.Transport.Crypt, err = kcp.NewAESBlockCrypt(cfg.CryptKey); err != nil {
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

// start runs the stages, the store's end first, so that each finds the stages it feeds running.
func (p *Pipeline) start() error {
	for _, start := range []func() error{p.Outgoing.Loop().Start, p.Cache.Start, p.Sessions.Start, p.Incoming.Start} {
		if err := start(); err != nil {
			return err
		}
	}
	return nil
}

// loops returns the loops that host the stages, in pipeline order (Incoming, SessionMgr,
// CachePrc, Outgoing), leaving out those of stages not made (a failed start).
func (p *Pipeline) loops() []*loop.Loop {
	var ls []*loop.Loop
	if p.Incoming != nil {
		ls = append(ls, p.Incoming.Loop())
	}
	if p.Sessions != nil {
		ls = append(ls, p.Sessions.Loop())
	}
	if p.Cache != nil {
		ls = append(ls, p.Cache.Loop())
	}
	if p.Outgoing != nil {
		ls = append(ls, p.Outgoing.Loop())
	}
	return ls
}

// stopOrder returns the loops in the order Stop ends them: the store's end first.
func (p *Pipeline) stopOrder() []*loop.Loop {
	return []*loop.Loop{p.Outgoing.Loop(), p.Cache.Loop(), p.Sessions.Loop(), p.Incoming.Loop()}
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
