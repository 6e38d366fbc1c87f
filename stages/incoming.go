package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// IncomingConfig configures the Incoming stage.
type IncomingConfig struct {
	Transport transport.Config
	// Loop is the loop that hosts the stage (the daemon's mapping: daemon/pipeline.go); nil: a
	// loop of its own.
	Loop *loop.Loop
	// Replies is the capacity of the queue other stages push replies and pushes into.
	Replies int // default 16384
	// Routes maps operations to the queue of the stage that serves them (CachePrc, SessionMgr).
	// An operation with no route is answered CodeUnknownOp.
	Routes map[task.Op]*loop.Queue
	// MaxKey and MaxValue bound request keys and values; over them, CodeTooLarge.
	MaxKey, MaxValue int // defaults 250 bytes and 1 MiB
	// Pipeline: the stage runs in the daemon's pipeline, where the stages that reply close its
	// reply queue when they have finished (daemon.go, Stop); on its own, Stop closes it.
	Pipeline bool
	// Vouch, if set, is asked about the value of a hello that would begin a conversation
	// (SessionMgr.Vouches): one it vouches for is admitted ahead of strangers' conversations
	// (transport.Config.Vouch). It must be safe to call on Incoming's loop.
	Vouch func(hello []byte) bool
	// SlowLog is the slow log's threshold: requests that take at least this long, from their
	// decoding to their reply, are kept in it (the SlowLogLen most recent). 0: 10 ms; negative:
	// no slow log. SlowLogLen 0: 128.
	SlowLog    time.Duration
	SlowLogLen int
	// Info, if set, answers the info op (Redis's INFO) on Incoming's loop: the text of section
	// (empty: every section), or an error naming the sections there are (answered code 6). It
	// must be safe to call on Incoming's loop and brief: it reads counters other stages publish
	// atomically, never a stage's own state. Without it, info is answered code 7 (unknown_op).
	Info   func(section string) ([]byte, error)
	Logger *slog.Logger
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
	stage   *loop.Stage // the stage on its loop: its queue and hooks
	loop    *loop.Loop  // the loop that hosts it (and maybe other stages)
	srv     *transport.Server
	replies *loop.Queue

	bare bool        // no SessionMgr behind: no hello needed (tests, benchmarks of the network stage)
	hdr  wire.Header // scratch for decoding, loop goroutine only
	vhdr wire.Header // scratch for vouch, loop goroutine only
	out  []byte      // scratch for encoding, loop goroutine only

	requests, badFrames, busy, repliesDropped atomic.Uint64

	reqs requestStats // per op and code (incoming_requests.go)
	slow slowLog      // loop goroutine only
}

// IncomingStats is what Incoming publishes for monitoring: the transport's counters and
// request outcomes.
type IncomingStats struct {
	Transport      transport.Stats
	Requests       uint64 // frames decoded into requests
	BadFrames      uint64 // frames whose header could not be decoded
	Busy           uint64 // requests answered busy: the next stage's queue was full, or the reply did not fit in the conversation's send queue
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
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	in := &Incoming{cfg: cfg, log: LimitLogs(cfg.Logger).With("stage", "incoming"), bare: cfg.Routes[task.OpHello] == nil,
		slow: newSlowLog(cfg.SlowLog, cfg.SlowLogLen)}
	var err error
	if in.replies, err = loop.NewQueue("incoming.replies", cfg.Replies); err != nil {
		return nil, err
	}
	tcfg := cfg.Transport
	tcfg.Logger = in.log
	if cfg.Vouch != nil {
		tcfg.Vouch = in.vouch
	}
	if in.srv, err = transport.NewServer(tcfg, in); err != nil {
		return nil, err
	}
	in.stage, err = hostStage(cfg.Loop, loop.Config{Name: "incoming", Logger: cfg.Logger, PipelineClose: cfg.Pipeline},
		loop.StageConfig{Name: "incoming", Stage: task.StageIncoming, OnStop: in.onStop})
	if err == nil {
		in.loop = in.stage.Loop()
		err = in.stage.AddQueue(in.replies, in.reply)
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
func (in *Incoming) SetRoute(op task.Op, q *loop.Queue) {
	if in.cfg.Routes == nil {
		in.cfg.Routes = map[task.Op]*loop.Queue{}
	}
	in.cfg.Routes[op] = q
	if op == task.OpHello {
		in.bare = false
	}
}

// StopReading stops taking datagrams from the network (replies still go out). Loop goroutine
// only: use Loop.Run.
func (in *Incoming) StopReading() { in.srv.StopReading() }

// CloseConversations closes every client conversation, as if the network had cut them (tests
// of reconnection). Loop goroutine only: use Loop.Run.
func (in *Incoming) CloseConversations() { in.srv.CloseAll() }

// Config returns the stage's configuration, with its defaults resolved.
func (in *Incoming) Config() IncomingConfig { return in.cfg }

// Replies returns the queue other stages push replies and pushes into.
func (in *Incoming) Replies() *loop.Queue { return in.replies }

// Loop returns the loop that hosts the stage (for barriers and stats).
func (in *Incoming) Loop() *loop.Loop { return in.loop }

// Stage returns the stage on its loop (for its own stats).
func (in *Incoming) Stage() *loop.Stage { return in.stage }

// Start runs the stage (its loop runs once every stage it hosts has started).
func (in *Incoming) Start() error { return in.stage.Start() }

// Stop stops the loop: on its own (not Pipeline) its reply queue is closed, every reply queued
// is sent, and the socket is closed; in the pipeline it waits for SessionMgr to close the reply
// queue (daemon.go).
func (in *Incoming) Stop(ctx context.Context) error { return in.loop.Stop(ctx) }

// Stats returns the stage's counters. Safe for concurrent use.
func (in *Incoming) Stats() IncomingStats {
	return IncomingStats{
		Transport: in.srv.Stats(), Requests: in.requests.Load(), BadFrames: in.badFrames.Load(),
		Busy: in.busy.Load(), RepliesDropped: in.repliesDropped.Load(),
	}
}

func (in *Incoming) onStop() {
	stageFinished("incoming")
	if err := in.srv.Close(); err != nil && !errors.Is(err, transport.ErrServerClosed) {
		in.log.Warn("closing transport", "err", err)
	}
}

// Frame implements transport.Handler: one request from a client. It is checked against the
// protocol (wire.Check) and the server's limits before it goes anywhere: nothing malformed,
// oversized or undefined reaches another stage. A pending conversation (no hello yet) may only
// say hello: a frame whose header cannot be read closes it at once, without a reply, and after
// maxStrikes refused requests it is closed too.
func (in *Incoming) Frame(c *transport.Conn, body []byte) {
	h := &in.hdr
	value, err := wire.Decode(body, h) // on an error h keeps only what the reply may carry
	st := connStateOf(c)
	if in.bare && err == nil {
		// No SessionMgr behind us (a bare network stage): a well-formed frame establishes the
		// conversation; a flood of junk datagrams never does.
		c.Establish()
		st.authed = true
	}
	if errors.Is(err, wire.ErrBadField) {
		// The header was read, but it is not a valid one: a request refused, answered with its
		// id and op (if those could be read).
		in.badFrames.Add(1)
		in.refuse(c, st, h, task.CodeBadRequest, err.Error())
		return
	}
	if err != nil { // not even a JSON object: id 0, no op
		in.badFrames.Add(1)
		if !st.authed {
			in.log.Info("closing pending conversation: malformed frame", "conn", c.ID(), "addr", c.Addr(), "err", err)
			c.Close(fmt.Errorf("%w: %w", transport.ErrNotHello, err))
			return
		}
		in.log.Info("bad frame", "conn", c.ID(), "session", st.session, "addr", c.Addr(), "err", err)
		in.replyError(c, h, task.CodeBadRequest, err.Error())
		return
	}
	in.requests.Add(1)
	code, msg := in.check(c, st, h, body, value)
	if code != task.CodeOK {
		in.refuse(c, st, h, code, msg)
		return
	}
	switch h.Op {
	case task.OpPing:
		in.replyError(c, h, task.CodeOK, "")
		return
	case task.OpEcho:
		in.forward(c, in.replies, h, value) // echo comes back through our own reply queue
		return
	case task.OpSlowLog:
		in.replySlowLog(c, h)
		return
	case task.OpInfo:
		in.replyInfo(c, st, h, value)
		return
	}
	q := in.cfg.Routes[h.Op]
	if q == nil {
		in.refuse(c, st, h, task.CodeUnknownOp, fmt.Sprintf("operation %s is not served by this server", h.Op))
		return
	}
	if rule, _ := wire.RequestFor(h.Op); !rule.Value {
		value = nil // a value the op does not use is not carried further
	}
	in.forward(c, q, h, value)
}

// vouch implements transport.Config.Vouch: frame, the first of a conversation, is a hello
// whose value cfg.Vouch vouches for.
func (in *Incoming) vouch(frame []byte) bool {
	value, err := wire.Decode(frame, &in.vhdr)
	return err == nil && in.vhdr.Op == task.OpHello && in.cfg.Vouch(value)
}

// maxStrikes is how many requests a pending conversation may have refused before it is closed.
const maxStrikes = 4

// check returns CodeOK if the request h may go on, or the error to answer it with.
func (in *Incoming) check(c *transport.Conn, st *connState, h *wire.Header, body, value []byte) (task.Code, string) {
	if code, msg := wire.Check(h); code != task.CodeOK {
		return code, msg
	}
	switch {
	case len(h.Key) > in.cfg.MaxKey:
		return task.CodeTooLarge, fmt.Sprintf("key of %d bytes over the limit of %d", len(h.Key), in.cfg.MaxKey)
	case len(value) > in.cfg.MaxValue && valueIsData(h.Op):
		return task.CodeTooLarge, fmt.Sprintf("value of %d bytes over the limit of %d", len(value), in.cfg.MaxValue)
	case st.authed:
		return task.CodeOK, ""
	case h.Op != task.OpHello:
		return task.CodeUnauthorized, "hello first"
	case 4+len(body) < wire.MinHello:
		return task.CodeBadRequest, fmt.Sprintf("a hello must be at least %d bytes: pad it (PROTOCOL.md)", wire.MinHello)
	}
	return task.CodeOK, ""
}

// valueIsData reports whether op's value is held to MaxValue: a value the cache keeps or
// returns (set, exec's arguments, echo, mget's keys). A hello's is not (its padding must not
// make a small -max-value refuse every client: PROTOCOL.md), and one an op does not use is
// ignored, whatever its size.
func valueIsData(op task.Op) bool {
	rule, _ := wire.RequestFor(op)
	return rule.Value && op != task.OpHello
}

// refuse answers a request with an error; a pending conversation that has been refused too
// often is closed instead.
func (in *Incoming) refuse(c *transport.Conn, st *connState, h *wire.Header, code task.Code, msg string) {
	if !st.authed {
		if st.strikes++; st.strikes > maxStrikes {
			in.log.Info("closing pending conversation: refused too often", "conn", c.ID(), "addr", c.Addr(), "last", msg)
			c.Close(transport.ErrNotHello)
			return
		}
	}
	in.log.Debug("request refused", "conn", c.ID(), "session", st.session, "addr", c.Addr(), "op", h.Op, "code", code, "msg", msg)
	in.replyError(c, h, code, msg)
}

// forward hands the request to the stage consuming q, or answers busy or unavailable.
func (in *Incoming) forward(c *transport.Conn, q *loop.Queue, h *wire.Header, value []byte) {
	t := in.newTask(c, h, value)
	switch err := q.Push(t); {
	case err == nil:
	case errors.Is(err, loop.ErrQueueFull):
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
	t.Op, t.ReqID, t.Conn, t.Flags = h.Op, h.ID, c.ID(), h.Flags
	t.Version, t.TTLms, t.Delta, t.Seq = h.Ver, h.TTL, h.Delta, h.Seq
	t.Key = append(t.Key, h.Key...)
	t.Proc = append(t.Proc, h.Proc...) // exec's processor; empty for every other op
	t.Value = append(t.Value, value...)
	if h.Op == task.OpHello {
		t.Addr = c.Addr()
	}
	t.Enter[task.StageIncoming] = in.loop.Clock().Nanos()
	t.Queued = t.Enter[task.StageIncoming] // its wait in the next stage's queue counts from now
	return t
}

// answerLease tells SessionMgr when the session's conversation last heard from its client
// (sessionmgr.go: any traffic renews a lease).
func (in *Incoming) answerLease(t *task.Task) {
	t.Delta = 0
	if c := in.srv.Conn(t.Conn); c != nil {
		t.Delta = c.LastHeard()
	}
	if q := in.cfg.Routes[task.OpHello]; q == nil || q.Push(t) != nil {
		task.Put(t) // SessionMgr full or gone: it expires the session when the lease runs out again
	}
}

// Closed implements transport.Handler.
func (in *Incoming) Closed(c *transport.Conn, reason error) {
	in.log.Debug("conversation closed", "conn", c.ID(), "addr", c.Addr(), "reason", reason)
}

// connState is what Incoming keeps per conversation (transport.Conn.Ctx).
type connState struct {
	authed  bool   // a hello succeeded on this conversation
	session uint64 // its session, for log lines
	strikes int    // requests refused while pending
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
	if t.Op == task.OpLease {
		in.answerLease(t)
		return
	}
	defer task.Put(t)
	c := in.srv.Conn(t.Conn)
	if c == nil {
		in.repliesDropped.Add(1) // the client is gone
		return
	}
	switch {
	case t.Op == task.OpDrop:
		// Tell the client at once (a goodbye with id 0 and code 8), rather than let it find out
		// from the silence: it redials and starts a new session.
		in.log.Info("closing conversation: session gone", "conn", c.ID(), "session", connStateOf(c).session, "addr", c.Addr())
		in.send(c, &wire.Header{V: wire.Version, Op: task.OpGoodbye, Code: task.CodeUnauthorized, Msg: "session expired"}, nil)
		c.Close(errors.New("session expired"))
		return
	case t.Op == task.OpHello && t.Code == task.CodeOK:
		st := connStateOf(c)
		st.authed, st.session = true, t.Session
		c.Establish()
		c.SetLive(true)
	case t.Op == task.OpHello && !connStateOf(c).authed:
		st := connStateOf(c)
		if st.strikes++; st.strikes > maxStrikes {
			in.log.Info("closing pending conversation: hello refused too often", "conn", c.ID(), "addr", c.Addr())
			c.Close(transport.ErrNotHello)
			return
		}
	case t.Op == task.OpGoodbye:
		connStateOf(c).authed = false
		c.SetLive(false)
	}
	h := &in.hdr
	h.Reset()
	h.V, h.Op, h.ID, h.Code = wire.Version, t.Op, t.ReqID, t.Code
	h.Ver, h.Delta, h.Seq, h.Flags = t.Version, t.Delta, t.Seq, wire.ReplyFlags(t.Op, t.Flags)
	if t.Op == task.OpPush {
		h.Flags = t.Kind
	}
	if t.Op == task.OpPush {
		h.Key = append(h.Key, t.Key...)
	}
	if t.Err != nil {
		h.Msg = t.Err.Error()
	}
	value := t.Value
	if !wire.ReplyHasValue(t.Op) {
		value = nil
	}
	in.send(c, h, value)
	in.measure(c, t)
}

func (in *Incoming) replyError(c *transport.Conn, req *wire.Header, code task.Code, msg string) {
	h := wire.Header{V: wire.Version, Op: req.Op, OpName: req.OpName, ID: req.ID, Code: code, Msg: msg}
	in.send(c, &h, nil)
	in.reqs.observe(req.Op, code, 0) // answered where it was decoded
}

// send sends a reply or push. Every request gets exactly one reply: one that cannot be encoded
// is answered internal, one that does not fit in the conversation's send queue (the client is
// not reading its replies fast enough) busy; those error replies, one segment each, always fit
// (transport.Conn.Send). A push that does not fit is dropped: the client sees the gap in its
// sequence numbers and asks for a replay.
func (in *Incoming) send(c *transport.Conn, h *wire.Header, value []byte) {
	var err error
	if in.out, err = wire.AppendFrame(in.out[:0], h, value); err != nil {
		in.log.Error("encoding reply", "conn", c.ID(), "op", h.Op, "err", err)
		in.sendInstead(c, h, task.CodeInternal, "the reply could not be encoded")
		return
	}
	if err := c.Send(in.out); err != nil {
		in.log.Warn("reply not sent", "conn", c.ID(), "session", connStateOf(c).session, "addr", c.Addr(), "op", h.Op, "bytes", len(in.out), "err", err)
		if errors.Is(err, transport.ErrSendQueueFull) && h.ID != 0 {
			in.sendInstead(c, h, task.CodeBusy, fmt.Sprintf("reply of %d bytes not sent: the conversation's send queue is full (read replies faster), retry", len(in.out)))
		} else {
			in.repliesDropped.Add(1)
		}
	}
	if cap(in.out) > 64<<10 {
		in.out = nil
	}
}

// sendInstead answers the request of the reply h, which could not be sent, with an error.
func (in *Incoming) sendInstead(c *transport.Conn, h *wire.Header, code task.Code, msg string) {
	if h.ID == 0 {
		in.repliesDropped.Add(1) // a push, or an error about an unreadable frame: nothing to answer
		return
	}
	if code == task.CodeBusy {
		in.busy.Add(1)
	}
	e := wire.Header{V: wire.Version, Op: h.Op, OpName: h.OpName, ID: h.ID, Code: code, Msg: msg}
	if in.out, _ = wire.AppendFrame(in.out[:0], &e, nil); c.Send(in.out) != nil {
		in.repliesDropped.Add(1) // the conversation has closed
	}
}
