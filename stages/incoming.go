package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// IncomingConfig configures the Incoming stage.
type IncomingConfig struct {
	Transport transport.Config
	CPUs      []int // optional CPU affinity of the loop
	// Replies is the capacity of the queue other stages push replies and pushes into.
	Replies int // default 16384
	// Routes maps operations to the queue of the stage that serves them (CachePrc, SessionMgr).
	// An operation with no route is answered CodeUnknownOp.
	Routes map[task.Op]*Queue
	// MaxKey and MaxValue bound request keys and values; over them, CodeTooLarge.
	MaxKey, MaxValue int // defaults 250 bytes and 1 MiB
	Logger           *slog.Logger
}

// Incoming is the network stage: it owns the UDP socket and every KCP conversation (package
// transport), turns frames into tasks for the stages behind it, and turns the replies and pushes
// they send back into frames.
//
// Requests it answers itself: ping (liveness, never queued behind other work) and echo (sent
// through its own reply queue, so it exercises the full task path: decode, task, queue, reply,
// encode, KCP).
type Incoming struct {
	cfg     IncomingConfig
	log     *slog.Logger
	loop    *Loop
	srv     *transport.Server
	replies *Queue

	hdr wire.Header // scratch for decoding, loop goroutine only
	out []byte      // scratch for encoding, loop goroutine only

	requests, badFrames, busy, repliesDropped atomic.Uint64
}

// IncomingStats is what Incoming publishes for monitoring: the transport's counters and
// request outcomes.
type IncomingStats struct {
	Transport      transport.Stats
	Requests       uint64 // frames decoded into requests
	BadFrames      uint64 // frames whose header could not be decoded
	Busy           uint64 // requests refused because the next stage's queue was full
	RepliesDropped uint64 // replies for conversations that had ended
}

// NewIncoming binds the socket and creates the loop; nothing runs until Start.
func NewIncoming(cfg IncomingConfig) (*Incoming, error) {
	if cfg.Replies <= 0 {
		cfg.Replies = 1 << 14
	}
	if cfg.MaxKey <= 0 {
		cfg.MaxKey = 250
	}
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = 1 << 20
	}
	if cfg.MaxValue > wire.MaxValue {
		return nil, fmt.Errorf("stages: incoming: MaxValue %d over the protocol's %d", cfg.MaxValue, wire.MaxValue)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	in := &Incoming{cfg: cfg, log: cfg.Logger.With("stage", "incoming")}
	var err error
	if in.replies, err = NewQueue("incoming.replies", cfg.Replies); err != nil {
		return nil, err
	}
	tcfg := cfg.Transport
	tcfg.Logger = in.log
	if in.srv, err = transport.NewServer(tcfg, in); err != nil {
		return nil, err
	}
	in.loop, err = NewLoop(LoopConfig{
		Name: "incoming", Stage: task.StageIncoming, CPUs: cfg.CPUs, Logger: cfg.Logger,
		OnStop: in.onStop,
	})
	if err == nil {
		err = in.loop.AddQueue(in.replies, in.reply)
	}
	if err == nil {
		err = in.srv.Attach(in.loop)
	}
	if err != nil {
		in.srv.Close()
		return nil, err
	}
	return in, nil
}

// Addr returns the UDP address clients dial.
func (in *Incoming) Addr() netip.AddrPort { return in.srv.Addr() }

// SetRoute sends op to the stage consuming q. Call before Start.
func (in *Incoming) SetRoute(op task.Op, q *Queue) {
	if in.cfg.Routes == nil {
		in.cfg.Routes = map[task.Op]*Queue{}
	}
	in.cfg.Routes[op] = q
}

// StopReading stops taking datagrams from the network (replies still go out). Loop goroutine
// only: use Loop.Run.
func (in *Incoming) StopReading() { in.srv.StopReading() }

// Replies returns the queue other stages push replies and pushes into.
func (in *Incoming) Replies() *Queue { return in.replies }

// Loop returns the stage's loop (for barriers and stats).
func (in *Incoming) Loop() *Loop { return in.loop }

// Start runs the stage.
func (in *Incoming) Start() error { return in.loop.Start() }

// Stop closes the socket once every queued reply has been sent, then stops the loop.
func (in *Incoming) Stop(ctx context.Context) error { return in.loop.Stop(ctx) }

// Stats returns the stage's counters. Safe for concurrent use.
func (in *Incoming) Stats() IncomingStats {
	return IncomingStats{
		Transport: in.srv.Stats(), Requests: in.requests.Load(), BadFrames: in.badFrames.Load(),
		Busy: in.busy.Load(), RepliesDropped: in.repliesDropped.Load(),
	}
}

func (in *Incoming) onStop() {
	if err := in.srv.Close(); err != nil && !errors.Is(err, transport.ErrServerClosed) {
		in.log.Warn("closing transport", "err", err)
	}
}

// Frame implements transport.Handler: one request from a client.
func (in *Incoming) Frame(c *transport.Conn, body []byte) {
	h := &in.hdr
	value, err := wire.Decode(body, h)
	if err != nil {
		in.badFrames.Add(1)
		in.log.Warn("bad frame", "conn", c.ID(), "session", connStateOf(c).session, "addr", c.Addr(), "err", err)
		in.replyError(c, h, task.CodeBadRequest, err.Error())
		return
	}
	in.requests.Add(1)
	st := connStateOf(c)
	if in.cfg.Routes[task.OpHello] == nil {
		// No SessionMgr behind us (a bare network stage): a well-formed frame establishes the
		// conversation; a flood of junk datagrams never does.
		c.Establish()
		st.authed = true
	}
	switch {
	case h.V != wire.Version:
		in.replyError(c, h, task.CodeVersion, fmt.Sprintf("protocol version %d not supported (server speaks %d)", h.V, wire.Version))
		return
	case len(h.Key) > in.cfg.MaxKey:
		in.replyError(c, h, task.CodeTooLarge, fmt.Sprintf("key of %d bytes over the limit of %d", len(h.Key), in.cfg.MaxKey))
		return
	case len(value) > in.cfg.MaxValue:
		in.replyError(c, h, task.CodeTooLarge, fmt.Sprintf("value of %d bytes over the limit of %d", len(value), in.cfg.MaxValue))
		return
	}
	if !st.authed && h.Op != task.OpHello {
		in.replyError(c, h, task.CodeUnauthorized, "hello first")
		return
	}
	switch h.Op {
	case task.OpPing:
		in.replyError(c, h, task.CodeOK, "")
		return
	case task.OpNone:
		in.replyError(c, h, task.CodeUnknownOp, "unknown operation")
		return
	}
	q := in.replies // echo comes back through our own reply queue
	if h.Op != task.OpEcho {
		if q = in.cfg.Routes[h.Op]; q == nil {
			in.replyError(c, h, task.CodeUnknownOp, fmt.Sprintf("operation %s is not served by this server", h.Op))
			return
		}
	}
	t := in.newTask(c, h, value)
	switch err := q.Push(t); {
	case err == nil:
	case errors.Is(err, ErrQueueFull):
		in.busy.Add(1)
		task.Put(t)
		in.replyError(c, h, task.CodeBusy, "server busy, retry")
	default:
		task.Put(t)
		in.replyError(c, h, task.CodeUnavailable, "server stopping")
	}
}

func (in *Incoming) newTask(c *transport.Conn, h *wire.Header, value []byte) *task.Task {
	t := task.Get()
	t.Op, t.ReqID, t.Session, t.Flags = h.Op, h.ID, c.ID(), h.Flags
	t.Version, t.TTLms, t.Delta, t.Seq = h.Ver, h.TTL, h.Delta, h.Seq
	t.Key = append(t.Key, h.Key...)
	t.Value = append(t.Value, value...)
	t.Enter[task.StageIncoming] = in.loop.Clock().Nanos()
	return t
}

// Closed implements transport.Handler.
func (in *Incoming) Closed(c *transport.Conn, reason error) {
	in.log.Debug("conversation closed", "conn", c.ID(), "addr", c.Addr(), "reason", reason)
}

// connState is what Incoming keeps per conversation (transport.Conn.Ctx).
type connState struct {
	authed  bool   // a hello succeeded on this conversation
	session uint64 // its session, for log lines
}

func connStateOf(c *transport.Conn) *connState {
	st, _ := c.Ctx.(*connState)
	if st == nil {
		st = &connState{}
		c.Ctx = st
	}
	return st
}

// reply is the handler of the reply queue: a reply or push from another stage (or an echo).
func (in *Incoming) reply(t *task.Task) {
	defer task.Put(t)
	c := in.srv.Conn(t.Session)
	if c == nil {
		in.repliesDropped.Add(1) // the client is gone
		return
	}
	switch {
	case t.Op == task.OpGoodbye && t.Flags&task.FlagDrop != 0:
		in.log.Info("closing conversation: session gone", "conn", c.ID(), "session", connStateOf(c).session)
		c.Close(errors.New("session expired"))
		return
	case t.Op == task.OpHello && t.Code == task.CodeOK:
		st := connStateOf(c)
		st.authed, st.session = true, t.Aux
		c.Establish()
	case t.Op == task.OpGoodbye:
		connStateOf(c).authed = false
	}
	h := &in.hdr
	h.Reset()
	h.V, h.Op, h.ID, h.Code = wire.Version, t.Op, t.ReqID, t.Code
	h.Ver, h.TTL, h.Delta, h.Seq, h.Flags = t.Version, t.TTLms, t.Delta, t.Seq, t.Flags&task.WireFlags
	if t.Op == task.OpPush {
		h.Key = append(h.Key, t.Key...)
	}
	if t.Err != nil {
		h.Msg = t.Err.Error()
	}
	in.send(c, h, t.Value)
}

func (in *Incoming) replyError(c *transport.Conn, req *wire.Header, code task.Code, msg string) {
	h := wire.Header{V: wire.Version, Op: req.Op, ID: req.ID, Code: code, Msg: msg}
	in.send(c, &h, nil)
}

func (in *Incoming) send(c *transport.Conn, h *wire.Header, value []byte) {
	var err error
	in.out, err = wire.AppendFrame(in.out[:0], h, value)
	if err != nil {
		in.log.Error("encoding reply", "conn", c.ID(), "op", h.Op, "err", err)
		return
	}
	if err := c.Send(in.out); err != nil {
		in.log.Warn("reply not sent", "conn", c.ID(), "addr", c.Addr(), "err", err)
	}
	if cap(in.out) > 64<<10 {
		in.out = nil
	}
}
