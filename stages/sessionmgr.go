package stages

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/wire"
)

// SessionConfig configures SessionMgr. Zero values mean the defaults.
type SessionConfig struct {
	// Tokens are the accepted auth tokens. Empty means no authentication: any hello succeeds
	// (the daemon logs a warning at start).
	Tokens []string
	// Heartbeat bounds: the client proposes an interval in its hello; the server clamps it.
	MinHeartbeat, MaxHeartbeat, DefaultHeartbeat time.Duration // defaults 200 ms, 60 s, 2 s
	// LeaseBeats is how many intervals a session may stay silent before it expires; default 3.
	LeaseBeats int
	// ReplayWindow is how many pushes each session keeps for replay after a gap; default 1024.
	ReplayWindow int
	// PushWindow is how many pushes may be out unacknowledged per session; default 256, never
	// more than ReplayWindow. PushBacklog is how many keys' changes may wait, coalesced, while
	// the window is full before the session gets a resync instead; default 1024.
	PushWindow, PushBacklog int
	// PushBytes bounds the values one session holds in pushes not yet acknowledged and in its
	// backlog (default 4 MiB); PushMemory, those of all sessions (default 256 MiB). Beyond,
	// pushes go without their values (notify.go).
	PushBytes, PushMemory int64
	// EventMemory bounds the values of change events on their way from CachePrc (default
	// 64 MiB); beyond, events go without values.
	EventMemory int64
	// MaxSubscriptions bounds the keys and prefixes one session subscribes to; default 10,000.
	MaxSubscriptions int
	Queue            int // inbound queue capacity; default 4096
	// Loop is the loop that hosts the stage (the daemon's mapping: daemon/pipeline.go); nil: a
	// loop of its own.
	Loop   *loop.Loop
	Logger *slog.Logger
}

type session struct {
	id     uint64
	name   string
	resume string
	conn   uint64         // the transport conversation it is bound to
	addr   netip.AddrPort // the client's address, as its last hello came from
	beat   time.Duration
	lease  timer.Timer
	heard  int64        // the last time (cached clock, ns) the client was known to be alive
	asking bool         // a lease check is out to Incoming
	notify *notifyState // subscriptions and push stream; nil until the first subscribe
}

// SessionMgr owns sessions: hello (with the auth token), heartbeats, expiry of silent
// sessions, goodbye, and resume after a reconnect. Incoming lets a conversation do nothing but
// hello until SessionMgr has accepted one on it.
type SessionMgr struct {
	cfg        SessionConfig
	log        *slog.Logger
	stage      *loop.Stage // the stage on its loop: its queue and hooks
	loop       *loop.Loop  // the loop that hosts it (and maybe other stages)
	in         *loop.Queue
	replies    *loop.Queue
	toIncoming *loop.Outbox // replies kept while Incoming is full (Connect)

	byID     map[uint64]*session
	byResume map[string]*session
	byConn   map[uint64]*session
	nextID   uint64
	// resumeKey signs resume tokens (sessionmgr_vouch.go); drawn in NewSessionMgr, then only
	// read (by any goroutine: Vouches).
	resumeKey [32]byte

	exactSubs, prefixSubs map[string]map[*session]struct{} // key or prefix -> subscribed sessions
	prefixLens            lengths                          // the lengths of the prefixes in prefixSubs
	pushBytes             int64                            // values held by every session's push state
	events                *byteBudget                      // values of change events in flight from CachePrc

	tokens                                atomic.Pointer[[]string] // cfg.Tokens, or what SetTokens gave since
	sessions, expired, refused            atomic.Int64
	subscriptions, pushesDropped, resyncs atomic.Int64
	held, coalesced, valuesDropped        atomic.Int64
	pushBytesGauge                        atomic.Int64
}

// NewSessionMgr creates the stage. Connect it to Incoming's reply queue before Start.
func NewSessionMgr(cfg SessionConfig) (*SessionMgr, error) {
	if cfg.MinHeartbeat <= 0 {
		cfg.MinHeartbeat = 200 * time.Millisecond
	}
	if cfg.MaxHeartbeat <= 0 {
		cfg.MaxHeartbeat = time.Minute
	}
	if cfg.DefaultHeartbeat <= 0 {
		cfg.DefaultHeartbeat = 2 * time.Second
	}
	if cfg.LeaseBeats <= 0 {
		cfg.LeaseBeats = 3
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = 1024
	}
	if cfg.PushWindow <= 0 {
		cfg.PushWindow = 256
	}
	cfg.PushWindow = min(cfg.PushWindow, cfg.ReplayWindow)
	if cfg.PushBacklog <= 0 {
		cfg.PushBacklog = 1024
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.PushBytes <= 0 {
		cfg.PushBytes = 4 << 20
	}
	if cfg.PushMemory <= 0 {
		cfg.PushMemory = 256 << 20
	}
	if cfg.EventMemory <= 0 {
		cfg.EventMemory = 64 << 20
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = 10_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &SessionMgr{cfg: cfg, log: cfg.Logger.With("stage", "sessionmgr"),
		byID: map[uint64]*session{}, byResume: map[string]*session{}, byConn: map[uint64]*session{},
		exactSubs: map[string]map[*session]struct{}{}, prefixSubs: map[string]map[*session]struct{}{},
		events: &byteBudget{limit: cfg.EventMemory}}
	rand.Read(m.resumeKey[:])
	m.tokens.Store(&cfg.Tokens)
	var err error
	if m.in, err = loop.NewQueue("sessionmgr.requests", cfg.Queue); err != nil {
		return nil, err
	}
	if m.stage, err = hostStage(cfg.Loop, loop.Config{Name: "sessionmgr", Logger: cfg.Logger, PipelineClose: true},
		loop.StageConfig{Name: "sessionmgr", Stage: task.StageSessionMgr, OnQueueClosed: func(*loop.Queue) { m.finish() }}); err != nil {
		return nil, err
	}
	m.loop = m.stage.Loop()
	if err := m.stage.AddQueue(m.in, m.request); err != nil {
		return nil, err
	}
	return m, nil
}

// Connect sets where replies go (Incoming's reply queue). Call before Start.
//
// Replies (and lease checks, and conversations to drop) are kept in an outbox while Incoming is
// full, in order; pushes are not: one that finds Incoming full, or replies waiting, is dropped
// and counted, and the client gets it again by asking for a replay (its sequence shows the gap).
func (m *SessionMgr) Connect(replies *loop.Queue) {
	m.replies = replies
	m.toIncoming = loop.NewOutbox(m.loop, replies.Push, nil)
}

// Start runs the stage.
func (m *SessionMgr) Start() error {
	if m.replies == nil {
		return errors.New("stages: sessionmgr: Connect before Start")
	}
	return m.stage.Start()
}

// Requests returns the queue Incoming routes session operations to.
func (m *SessionMgr) Requests() *loop.Queue { return m.in }

// Loop returns the loop that hosts the stage.
func (m *SessionMgr) Loop() *loop.Loop { return m.loop }

// Stage returns the stage on its loop (for its own stats).
func (m *SessionMgr) Stage() *loop.Stage { return m.stage }

// SessionStats counts sessions.
type SessionStats struct {
	Sessions      int64 // alive now
	Expired       int64 // expired for silence
	Refused       int64 // hellos refused (bad token, bad resume)
	Subscriptions int64 // keys and prefixes subscribed to, over all sessions
	PushesDropped int64 // pushes Incoming could not take (kept for replay)
	Resyncs       int64 // resync pushes sent (a gap left the replay window, or a backlog overflowed)
	Held          int64 // changes that waited for room in a slow subscriber's push window
	Coalesced     int64 // changes replaced by a newer one of the same key, or covered by a resync
	ValuesDropped int64 // pushes sent without their value: the session's or everyone's value budget was spent
	PushBytes     int64 // values held now in pushes not yet acknowledged and in backlogs
}

// Stats returns the counters. Safe for concurrent use.
func (m *SessionMgr) Stats() SessionStats {
	return SessionStats{Sessions: m.sessions.Load(), Expired: m.expired.Load(), Refused: m.refused.Load(),
		Subscriptions: m.subscriptions.Load(), PushesDropped: m.pushesDropped.Load(), Resyncs: m.resyncs.Load(),
		Held: m.held.Load(), Coalesced: m.coalesced.Load(), ValuesDropped: m.valuesDropped.Load(),
		PushBytes: m.pushBytesGauge.Load()}
}

// EventBudget is what CachePrc takes from for the values of the change events it sends here.
func (m *SessionMgr) EventBudget() *byteBudget { return m.events }

// byteBudget bounds the bytes in flight from one stage to another: the producer takes before it
// sends, the consumer gives back when done. Safe for concurrent use.
type byteBudget struct {
	used  atomic.Int64
	limit int64
}

// take reports whether n more bytes fit, and counts them if so.
func (b *byteBudget) take(n int) bool {
	if b.used.Add(int64(n)) > b.limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *byteBudget) give(n int) { b.used.Add(-int64(n)) }

// HasSubscribers reports whether any session subscribes to anything, so that CachePrc emits
// change events only when someone listens. Safe for concurrent use.
func (m *SessionMgr) HasSubscribers() bool { return m.subscriptions.Load() > 0 }

func (m *SessionMgr) request(t *task.Task) {
	switch t.Op {
	case task.OpHello:
		m.hello(t)
	case task.OpHeartbeat:
		s := m.byConn[t.Conn]
		if s == nil {
			m.fail(t, task.CodeUnauthorized, errors.New("no session: hello again"))
			return
		}
		m.renew(s)
		if n := s.notify; n != nil {
			// The heartbeat carries the last push the client processed; the reply says where
			// the stream stands, so the client can tell it has seen every change so far.
			m.ack(s, t.Seq)
			t.Seq, t.Flags = n.seq, 0
			if n.behind() {
				t.Flags = task.FlagBehind
			}
		} else {
			t.Seq, t.Flags = 0, 0
		}
		m.reply(t)
	case task.OpLease:
		m.leaseAnswer(t)
	case task.OpAck:
		if s := m.byConn[t.Conn]; s != nil {
			m.renew(s)
			m.ack(s, t.Seq)
		}
		task.Put(t) // acks have no reply
	case task.OpPush:
		m.fanOut(t)
	case task.OpSubscribe, task.OpUnsubscribe:
		s := m.byConn[t.Conn]
		if s == nil {
			m.fail(t, task.CodeUnauthorized, errors.New("no session: hello again"))
			return
		}
		m.renew(s)
		m.subscribe(s, t)
	case task.OpGoodbye:
		if s := m.byConn[t.Conn]; s != nil {
			m.log.Debug("session ended", "session", s.id, "name", s.name, "addr", s.addr, "conn", s.conn)
			m.end(s)
		}
		m.reply(t)
	default:
		m.fail(t, task.CodeUnknownOp, fmt.Errorf("sessionmgr does not serve %s", t.Op))
	}
}

func (m *SessionMgr) hello(t *task.Task) {
	var req wire.HelloRequest
	if len(t.Value) > 0 {
		if err := json.Unmarshal(t.Value, &req); err != nil {
			m.fail(t, task.CodeBadRequest, fmt.Errorf("hello: %w", err))
			return
		}
	}
	if !m.tokenOK(req.Token) {
		m.refused.Add(1)
		m.log.Warn("hello refused: bad token", "addr", t.Addr, "conn", t.Conn, "name", req.Name)
		m.fail(t, task.CodeUnauthorized, errors.New("bad auth token"))
		return
	}
	var s *session
	resumed := false
	if req.Resume != "" {
		if s = m.byResume[req.Resume]; s == nil {
			m.refused.Add(1)
			m.log.Debug("hello refused: unknown or expired resume token", "addr", t.Addr, "conn", t.Conn, "name", req.Name)
			m.fail(t, task.CodeUnauthorized, errors.New("unknown or expired resume token: hello without it"))
			return
		}
		resumed = true
		if s.conn != t.Conn {
			m.dropConn(s.conn) // the old conversation is dead or stale
			delete(m.byConn, s.conn)
		}
	} else {
		if old := m.byConn[t.Conn]; old != nil {
			m.end(old) // a second hello on a conversation replaces its session
		}
		s = m.newSession(req.Name)
	}
	s.conn, s.addr = t.Conn, t.Addr
	m.byConn[s.conn] = s
	s.beat = m.clampBeat(time.Duration(req.HeartbeatMs) * time.Millisecond)
	m.renew(s)
	// Debug, not info: every pipecachectl command is a session of its own.
	m.log.Debug("session", "session", s.id, "name", s.name, "addr", s.addr, "conn", s.conn, "resumed", resumed, "heartbeat", s.beat)
	var seq uint64
	if s.notify != nil {
		seq = s.notify.seq
	}
	b, _ := json.Marshal(wire.HelloReply{Session: s.id, Resume: s.resume, Resumed: resumed,
		HeartbeatMs: s.beat.Milliseconds(), LeaseMs: m.lease(s).Milliseconds(), Seq: seq,
		PushWindow: m.cfg.PushWindow, PushBytes: m.cfg.PushBytes})
	t.Value = append(t.Value[:0], b...)
	t.Session = s.id
	m.reply(t)
	if resumed {
		m.replay(s, req.LastSeq) // after the reply, on the same conversation: in order
	}
}

// SetTokens replaces the accepted auth tokens (none: no authentication) from any goroutine (the
// daemon's SIGHUP reload); the next hello is checked against them. Sessions already accepted
// stay.
func (m *SessionMgr) SetTokens(tokens []string) {
	tokens = slices.Clone(tokens)
	m.tokens.Store(&tokens)
}

func (m *SessionMgr) tokenOK(token string) bool {
	tokens := *m.tokens.Load()
	if len(tokens) == 0 {
		return true
	}
	ok := 0
	for _, want := range tokens {
		ok |= subtle.ConstantTimeCompare([]byte(token), []byte(want))
	}
	return ok == 1
}

func (m *SessionMgr) newSession(name string) *session {
	m.nextID++
	s := &session{id: m.nextID, name: name, resume: m.newResume()}
	s.lease.Fn = func() { m.leaseDue(s) }
	m.byID[s.id] = s
	m.byResume[s.resume] = s
	m.sessions.Add(1)
	return s
}

func (m *SessionMgr) clampBeat(d time.Duration) time.Duration {
	if d <= 0 {
		return m.cfg.DefaultHeartbeat
	}
	return min(max(d, m.cfg.MinHeartbeat), m.cfg.MaxHeartbeat)
}

func (m *SessionMgr) lease(s *session) time.Duration { return time.Duration(m.cfg.LeaseBeats) * s.beat }

func (m *SessionMgr) renew(s *session) {
	s.heard, s.asking = m.loop.Clock().Nanos(), false
	m.loop.After(&s.lease, m.lease(s))
}

// Any traffic from a client renews its lease, not only heartbeats: when the lease runs out,
// SessionMgr asks Incoming when the session's conversation last heard from its client (any
// datagram: a request, an ACK, a segment that arrives out of order after a network cut) and
// expires the session only if that too is a lease ago. So a cut shorter than the lease never
// expires a session, and the question costs one task per lease, not one per request.

// leaseDue runs when s's lease ran out since its last heartbeat.
func (m *SessionMgr) leaseDue(s *session) {
	if s.asking {
		m.expire(s) // Incoming never answered within a whole lease
		return
	}
	t := task.Get()
	t.Op, t.Conn, t.Session = task.OpLease, s.conn, s.id
	m.toIncoming.Push(t)
	s.asking = true
	m.loop.After(&s.lease, m.lease(s))
}

// leaseAnswer takes Incoming's answer: Delta is when the conversation last heard from its
// client (0 if the conversation is gone).
func (m *SessionMgr) leaseAnswer(t *task.Task) {
	defer task.Put(t)
	s := m.byID[t.Session]
	if s == nil || !s.asking {
		return
	}
	s.asking = false
	if t.Conn == s.conn {
		s.heard = max(s.heard, t.Delta)
	}
	deadline := s.heard + int64(m.lease(s))
	if deadline <= m.loop.Clock().Nanos() {
		m.expire(s)
		return
	}
	m.loop.Wheel().Schedule(&s.lease, deadline)
}

// expire ends a session that stayed silent for its lease, and closes its conversation.
func (m *SessionMgr) expire(s *session) {
	m.expired.Add(1)
	m.log.Info("session expired", "session", s.id, "name", s.name, "addr", s.addr, "conn", s.conn, "lease", m.lease(s))
	m.dropConn(s.conn)
	m.end(s)
}

// end forgets s and everything it held.
func (m *SessionMgr) end(s *session) {
	m.loop.Wheel().Cancel(&s.lease)
	m.dropSubscriptions(s)
	delete(m.byID, s.id)
	delete(m.byResume, s.resume)
	if m.byConn[s.conn] == s {
		delete(m.byConn, s.conn)
	}
	m.sessions.Add(-1)
}

// dropConn tells Incoming to close a conversation.
func (m *SessionMgr) dropConn(conn uint64) {
	t := task.Get()
	t.Op, t.Conn = task.OpDrop, conn
	m.toIncoming.Push(t)
}

func (m *SessionMgr) reply(t *task.Task) { m.toIncoming.Push(t) }

// finish runs on the loop when the pipeline stops and SessionMgr's queue is closed (by CachePrc,
// its last producer): once the last replies and pushes have gone to Incoming, its reply queue is
// closed. Nothing here waits: Incoming may be on this very loop.
func (m *SessionMgr) finish() {
	m.toIncoming.Finish(func() {
		stageFinished("sessionmgr")
		m.loop.CloseQueue(m.replies)
	})
}

func (m *SessionMgr) fail(t *task.Task, code task.Code, err error) {
	t.Fail(code, err)
	t.Value = t.Value[:0]
	m.reply(t)
}
