package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Option configures Dial.
type Option func(*options)

type options struct {
	dialTimeout time.Duration
	heartbeat   time.Duration
	deadAfter   time.Duration
	window      int
	logger      *slog.Logger
	maxBackoff  time.Duration
	token, name string

	nearSize     int
	nearMaxStale time.Duration

	silenceTimeout   time.Duration // WithSilenceTimeout
	unreachableAfter time.Duration // WithUnreachableAfter
	attemptTimeout   time.Duration // Cluster only
	hooks            []Hook        // WithHook
	crypt            kcp.BlockCrypt
	cryptErr         error
	failFast         bool // while reconnecting, calls fail at once (a Cluster's nodes: it tries another)
}

// failFast makes calls fail at once while the client is reconnecting, rather than wait for the
// new session: a Cluster tries the key's next node instead.
func failFast() Option { return func(o *options) { o.failFast = true } }

// WithCryptKey encrypts and authenticates the session with a pre-shared AES key of 16, 24 or 32
// bytes (AES-GCM), as a server started with the same key (-crypt-key-file) expects; see
// ReadKeyFile. A server without a key, or with another, never answers: Dial fails with
// ErrTimeout.
func WithCryptKey(key []byte) Option { return withCrypt(key, false) }

// WithLegacyCryptKey is WithCryptKey in the framing servers used before AES-GCM (kcp-go's
// AES-CFB with a CRC32, which does not authenticate): for a server started with
// -crypt-legacy-cfb.
func WithLegacyCryptKey(key []byte) Option { return withCrypt(key, true) }

func withCrypt(key []byte, legacy bool) Option {
	return func(o *options) {
		if o.crypt, o.cryptErr = blockCrypt(key, legacy); o.cryptErr != nil {
			o.cryptErr = fmt.Errorf("%w: encryption key: %w", ErrBadRequest, o.cryptErr)
		}
	}
}

// crypts holds the process's BlockCrypt of each key and framing (cryptKey to kcp.BlockCrypt):
// the kcpnet engine gives each distinct BlockCrypt sockets of its own, so every Client and
// Cluster node with the same key shares one (kcp-go's BlockCrypts are safe for concurrent use).
var crypts sync.Map

type cryptKey struct {
	key    string
	legacy bool
}

func blockCrypt(key []byte, legacy bool) (kcp.BlockCrypt, error) {
	k := cryptKey{string(key), legacy}
	if b, ok := crypts.Load(k); ok {
		return b.(kcp.BlockCrypt), nil
	}
	newCrypt := kcp.NewAESGCMCrypt
	if legacy {
		newCrypt = kcp.NewAESBlockCrypt
	}
	b, err := newCrypt(key)
	if err != nil {
		return nil, err
	}
	shared, _ := crypts.LoadOrStore(k, b)
	return shared.(kcp.BlockCrypt), nil
}

// ReadKeyFile reads a pre-shared key file: 32, 48 or 64 hexadecimal digits (PROTOCOL.md).
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return wire.ParseKey(b)
}

// WithToken sets the auth token presented in the hello (the server's -auth-tokens).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithName sets the client name the server logs for this session.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithDialTimeout bounds how long Dial, DialContext and each redial wait for the server's
// first reply. Default 3 s.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithHeartbeat sets the heartbeat interval and how long the server may stay silent before the
// session is considered dead and redialled. Defaults 1 s and 5 s.
func WithHeartbeat(interval, deadAfter time.Duration) Option {
	return func(o *options) { o.heartbeat, o.deadAfter = interval, deadAfter }
}

// WithWindow sets the KCP send and receive windows in segments. Default 256.
func WithWindow(segments int) Option { return func(o *options) { o.window = segments } }

// WithSilenceTimeout fails the calls in flight with ErrTimeout once the server has sent nothing
// at all for d (not a reply, not a heartbeat reply): it looks dead, and a caller with another
// server to try should not wait for the session to be declared dead (WithHeartbeat's deadAfter).
// A server that keeps talking is alive, and its slow calls (a slow store) keep waiting for their
// replies, bounded by their contexts and the server's store timeout. The client sends
// heartbeats at least every d/2 so that a live server is never silent that long (if the server
// imposes a longer interval, twice that interval is used instead of d). One goroutine checks,
// so it costs nothing per call. Default 0: off. Cluster uses it for its attempt timeout.
func WithSilenceTimeout(d time.Duration) Option { return func(o *options) { o.silenceTimeout = d } }

// WithUnreachableAfter fails a call with ErrUnavailable once the server has sent nothing at all
// for d since the call was sent: no reply, and not even the transport's acknowledgment of a
// datagram. A live server acknowledges a request within a round trip however slow its store, so
// this says the server is stopped (on a host that sends no ICMP error) or cut off; a stopped
// server whose host does say so (an ICMP port unreachable) fails the call at once. The session
// is kept: KCP goes on resending, and the heartbeat decides when it is dead (WithHeartbeat).
// Default 1 s; 0: a call waits for its reply until its context ends.
func WithUnreachableAfter(d time.Duration) Option {
	return func(o *options) { o.unreachableAfter = d }
}

// WithLogger sets where the client logs reconnects. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Client is a connection to one pipecached server, safe for concurrent use.
type Client struct {
	addr string
	opts options
	log  *slog.Logger

	mu       sync.Mutex    // guards sess, ready, pending, closed, rc, watching, watchT
	sess     *session      // nil while reconnecting
	ready    chan struct{} // closed once sess is set; a new one while reconnecting
	pending  map[uint64]*call
	closed   bool
	rc       reconnectState // how reconnecting goes (reconnect.go)
	watching bool           // watchT is armed (reconnect.go: WithUnreachableAfter)
	watchT   *time.Timer    // the watch of unanswered calls; nil until first armed
	kick     chan struct{}  // buffered 1: asks the redial loop to try now (reconnect.go)
	closing  atomic.Bool    // Close has begun: no hello any more

	nextID   atomic.Uint64
	lastRecv atomic.Int64            // unix nanos when the newest session was opened (see heard)
	latest   atomic.Pointer[session] // the newest session: the current one, or the one being opened
	resume   atomic.Pointer[string]  // the session's resume token, once a hello succeeded
	beat     atomic.Int64            // negotiated heartbeat interval, nanoseconds
	session  atomic.Uint64           // the server's session id (0 before hello, or without sessions)

	subMu     sync.Mutex // guards subs, lastSeq, repairing, ackSent, ackArmed
	subs      []*Subscription
	lastSeq   uint64        // the last push sequence number delivered
	repairing bool          // a replay request is under way
	ackSent   uint64        // the last sequence number acknowledged to the server
	ackArmed  bool          // an acknowledgment is scheduled
	acks      kicker        // sends the acknowledgments (ackOnce)
	beatT     *time.Timer   // the heartbeat (beatTick); set before it is first armed
	reapT     *time.Timer   // the reaper (reapTick), with WithSilenceTimeout; set before it is first armed
	ackEvery  atomic.Uint64 // acknowledge at least every this many pushes: a quarter of the server's window
	ackBytes  atomic.Int64  // ... and every this many bytes of values: a quarter of the server's budget
	unacked   int64         // bytes of values pushed since the last acknowledgment, guarded by subMu
	near      *nearCache    // nil unless WithNearCache
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	redials   atomic.Uint64
	hook      ProcessFunc // the WithHook chain; nil without hooks

	failResubscribes atomic.Int32 // tests only: make this many re-subscribes fail (export_test.go)
}

// session is one conversation with the server and what rides on it. Its frames arrive at
// dispatch in stream order (on the kcpnet engine's loop goroutine on Linux: dial_kcpnet.go).
type session struct {
	link link        // the transport's conversation: dial_kcpnet.go, or dial_udpsession.go
	lost atomic.Bool // sessionFailed ran for it
}

// reply is a server's reply.
type reply struct {
	Header wire.Header
	Value  []byte // owned by the caller
}

type call struct {
	reply       chan reply // buffered 1; closed if the call failed without a reply
	sess        *session
	sentAt      int64 // unix nanos when the request was written
	timedOut    bool  // set before reply is closed: the call outlived the call timeout
	watched     bool  // a caller's request: fails if nothing is heard for WithUnreachableAfter
	unreachable bool  // set before reply is closed: nothing was heard from the server for that long
	// onReply, if set, runs in dispatch when the reply arrives, in stream order: before any
	// frame that follows it is handled. It must not block (dispatch does not).
	onReply func(h *wire.Header)
}

// Dial connects to the server at addr (host:port) and opens a session (hello with the token
// and name given as options). It fails if the server does not answer within the dial timeout
// (WithDialTimeout, default 3 s) or refuses the hello. It is DialContext with
// context.Background().
func Dial(addr string, opts ...Option) (*Client, error) {
	return DialContext(context.Background(), addr, opts...)
}

// DialContext is Dial bounded by ctx as well as by the dial timeout: if ctx ends first, the
// error wraps ctx's error (context.Canceled, or context.DeadlineExceeded and ErrTimeout).
// ctx bounds only the dial: the client's later redials are bounded by the dial timeout.
func DialContext(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	c := newClient(addr, opts)
	if c.opts.cryptErr != nil {
		return nil, fmt.Errorf("pipecache: dial %s: %w", addr, c.opts.cryptErr)
	}
	if err := c.connect(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("pipecache: dial %s: %w", addr, err)
	}
	c.startTimers()
	return c, nil
}

// newClient applies the options; the client has no session yet and no goroutine.
func newClient(addr string, opts []Option) *Client {
	o := options{dialTimeout: 3 * time.Second, heartbeat: time.Second, deadAfter: 5 * time.Second,
		window: 256, maxBackoff: 2 * time.Second, unreachableAfter: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.silenceTimeout > 0 {
		o.heartbeat = min(o.heartbeat, o.silenceTimeout/2)
	}
	c := &Client{addr: addr, opts: o, log: o.logger, pending: make(map[uint64]*call), done: make(chan struct{}),
		hook: chain(o.hooks), ready: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.rc.tried = make(chan struct{})
	c.acks.fn = c.ackOnce
	c.ackEvery.Store(64)
	c.ackBytes.Store(1 << 20)
	c.beat.Store(int64(o.heartbeat))
	if o.nearSize > 0 {
		c.near = newNearCache(c, o.nearSize, o.nearMaxStale)
	}
	return c
}

// connect opens a session: a new KCP conversation and a hello on it (resuming
// the session if there was one), waiting at most the dial timeout and until ctx ends. A hello
// that goes unanswered for a while is tried again on a fresh conversation (under loss the first
// one's datagrams may all be lost, or the server may have dropped it) until that time is up.
// Only then do other calls use the session.
func (c *Client) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	attempt := min(max(c.opts.dialTimeout/3, 300*time.Millisecond), c.opts.dialTimeout)
	for {
		err := c.connectOnce(ctx, attempt)
		if err == nil || ctx.Err() != nil || !errors.Is(err, ErrTimeout) {
			return err
		}
		c.log.Debug("hello unanswered; trying a new conversation", "addr", c.addr, "after", attempt)
	}
}

// connectOnce is one attempt of connect, on one conversation, for at most d. Its outcome is
// published to the calls waiting for a session (attemptEnded).
func (c *Client) connectOnce(ctx context.Context, d time.Duration) (err error) {
	defer func() { c.attemptEnded(err) }()
	s := &session{}
	c.lastRecv.Store(time.Now().UnixNano())
	if err := c.openLink(s); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c.latest.Store(s)
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := c.hello(actx, s); err != nil {
		s.link.close()
		if s.link.refused() {
			return fmt.Errorf("%w: connection refused: nothing listening at %s", ErrUnavailable, c.addr)
		}
		if ctx.Err() != nil { // the whole dial's time is up, not only this attempt's
			return fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.link.close()
		return ErrClosed
	}
	c.sess = s
	close(c.ready)
	c.mu.Unlock()
	return nil
}

// hello opens (or resumes) the session on s.
func (c *Client) hello(ctx context.Context, s *session) error {
	req := wire.HelloRequest{Name: c.opts.name, Token: c.opts.token, HeartbeatMs: c.opts.heartbeat.Milliseconds()}
	if r := c.resume.Load(); r != nil {
		req.Resume = *r
		c.subMu.Lock()
		req.LastSeq = c.lastSeq
		c.subMu.Unlock()
	}
	body := wire.HelloValue(req, helloValueSize)
	sent := time.Now().UnixNano()
	r, err := c.doOn(ctx, s, &wire.Header{Op: task.OpHello}, body)
	if err != nil && req.Resume != "" && errors.Is(err, ErrUnauthorized) {
		c.resume.Store(nil) // the session expired meanwhile: start a new one
		req.Resume = ""
		body = wire.HelloValue(req, helloValueSize)
		r, err = c.doOn(ctx, s, &wire.Header{Op: task.OpHello}, body)
	}
	switch {
	case errors.Is(err, ErrUnknownOp):
		return nil // a server without sessions (a bare network stage): nothing to open
	case errors.Is(err, context.Canceled):
		return err
	case err != nil:
		if errors.Is(err, ErrTimeout) {
			return fmt.Errorf("no answer: %w", err)
		}
		return fmt.Errorf("hello: %w", err)
	}
	var rep wire.HelloReply
	if err := json.Unmarshal(r.Value, &rep); err != nil {
		return fmt.Errorf("%w: hello reply: %w", ErrInternal, err)
	}
	if rep.Resume != "" {
		c.resume.Store(&rep.Resume)
	}
	if rep.HeartbeatMs > 0 {
		c.beat.Store(int64(time.Duration(rep.HeartbeatMs) * time.Millisecond))
	}
	c.session.Store(rep.Session)
	if rep.PushBytes > 0 {
		c.ackBytes.Store(max(1, rep.PushBytes/4))
	}
	if rep.PushWindow > 0 {
		c.ackEvery.Store(uint64(max(1, min(64, rep.PushWindow/4))))
	}
	c.afterHello(s, rep.Resumed, rep.Seq)
	if !rep.Resumed && c.near != nil {
		c.near.synced(sent) // a new session: no subscription yet, so nothing it could have missed
	}
	return nil
}

// helloValueSize is how long the SDK makes its hellos' values, so that their frames are about
// 1000 bytes (the header's ID is chosen when the frame is sent; with the length prefix it adds
// about 30): well over wire.MinHello, so that the server's anti-amplification limit (three
// times what a pending conversation sent) leaves room for several resends of the reply when
// datagrams are lost, as QUIC pads its first packets.
const helloValueSize = 1000 - 30

// Session returns the server's id for this client's session (0 before one is open).
func (c *Client) Session() uint64 { return c.session.Load() }

// roundTrip sends one request and waits for its reply, or for ctx. While the client is
// reconnecting it waits for the new session (within ctx). A read whose session is lost before
// its reply is sent again on the next one; a write is not (it may have been applied): it fails
// with ErrUnavailable. h.ID and h.V are set by it. A reply with a non-OK code is returned as a
// *ServerError.
func (c *Client) roundTrip(ctx context.Context, h *wire.Header, value []byte) (reply, error) {
	for attempt := 1; ; attempt++ {
		s, err := c.sessionFor(ctx)
		if err != nil {
			return reply{}, err
		}
		r, err := c.doOn(ctx, s, h, value)
		if errors.Is(err, errConnLost) && retriable(h.Op) && attempt < 3 {
			continue
		}
		return r, err
	}
}

// retriable reports whether op may be sent again after its session was lost: it changes
// nothing.
func retriable(op task.Op) bool {
	switch op {
	case task.OpGet, task.OpMGet, task.OpPing, task.OpEcho, task.OpStats, task.OpSlowLog, task.OpInfo,
		task.OpScan, task.OpTTL, task.OpType, task.OpExists:
		return true
	}
	return false
}

// sessionFor returns the current session, waiting for one while the client reconnects: until
// the redial loop's next attempt ends. Once an attempt has failed (nothing listens at the
// address, or nothing answers), a call fails with ErrUnavailable saying why, at once if that
// failure is fresh, else after one more attempt made for it; the redial loop goes on in the
// background. A Cluster's node (failFast) never waits.
func (c *Client) sessionFor(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, closed, ready, tried, down, downAt := c.sess, c.closed, c.ready, c.rc.tried, c.rc.err, c.rc.at
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case s != nil:
			return s, nil
		case c.opts.failFast:
			return nil, fmt.Errorf("%w to %s", errNotSent, c.addr)
		case down != nil && time.Since(downAt) < freshFailure:
			return nil, &reconnectError{addr: c.addr, cause: down}
		case down != nil:
			c.kickRedial() // old news: try now, and answer with what that attempt finds
		}
		select {
		case <-ready:
		case <-tried: // an attempt ended: connected, or failed a moment ago
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errNotSent, ctxError(ctx, "reconnecting to "+c.addr))
		}
	}
}

// doOn sends a request on the session s.
func (c *Client) doOn(ctx context.Context, s *session, h *wire.Header, value []byte) (reply, error) {
	return c.doOnWith(ctx, s, h, value, nil)
}

// doOnWith is doOn with a callback run in dispatch when the reply arrives (call.onReply).
func (c *Client) doOnWith(ctx context.Context, s *session, h *wire.Header, value []byte, onReply func(*wire.Header)) (reply, error) {
	if ctx.Err() != nil {
		// Already ended: not sent. Sent, its reply could be ready as soon as ctx.Done below,
		// and select would pick either: the call would succeed at random.
		return reply{}, ctxError(ctx, h.Op.String()+" "+c.addr)
	}
	h.ID = c.nextID.Add(1)
	cl := &call{reply: make(chan reply, 1), sess: s, sentAt: time.Now().UnixNano(), onReply: onReply, watched: watched(h.Op)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return reply{}, ErrClosed
	}
	c.pending[h.ID] = cl
	if cl.watched {
		c.watch()
	}
	c.mu.Unlock()

	if err := c.writeFrame(ctx, s, h, value); err != nil {
		c.forget(h.ID)
		if errors.Is(err, errSendFailed) {
			c.sessionFailed(s, err)
		}
		return reply{}, err
	}
	select {
	case r, ok := <-cl.reply:
		if !ok {
			if cl.timedOut {
				return reply{}, fmt.Errorf("%w: %s %s: no reply, and the server silent for %v", ErrTimeout, h.Op, c.addr, c.silence())
			}
			if cl.unreachable {
				return reply{}, fmt.Errorf("%w: %s %s: nothing heard from the server for %v since the request was sent: stopped or cut off (a write may or may not be applied)",
					ErrUnavailable, h.Op, c.addr, c.opts.unreachableAfter)
			}
			return reply{}, fmt.Errorf("%w: %s to %s (a write may or may not have been applied)", errConnLost, h.Op, c.addr)
		}
		if r.Header.Code != task.CodeOK {
			return r, &ServerError{Code: Code(r.Header.Code), Msg: r.Header.Msg}
		}
		return r, nil
	case <-ctx.Done():
		c.forget(h.ID)
		return reply{}, ctxError(ctx, h.Op.String()+" "+c.addr)
	}
}

// framePool holds frame encoding buffers: the transport copies a frame, so a buffer is needed
// only while its frame is queued.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// writeFrame sends one frame on s, whole: frames of concurrent callers never interleave. h.ID 0
// is a frame that expects no reply (an ack). An error wrapping errSendFailed means s is dead;
// ErrTooLarge, a context error or ErrClosed mean only that this frame was not sent.
//
// A full send queue (client/kcpnet's MaxSendQueue: about 11 MB waiting for the server's ACKs)
// is back-pressure, as a kcp-go UDPSession's full window was (its Write waited for room):
// writeFrame waits for room too, polling with back-off from 1 ms to 50 ms, until the frame is
// queued, ctx ends (an error wrapping ErrTimeout or context.Canceled), s is lost (errSendFailed),
// or the client closes (ErrClosed). It does not fail at once with ErrBusy: a burst of large
// writes that fills the queue drains at the network's pace, and its callers wait as before.
func (c *Client) writeFrame(ctx context.Context, s *session, h *wire.Header, value []byte) error {
	h.V = wire.Version
	bp := framePool.Get().(*[]byte)
	frame, err := wire.AppendFrame((*bp)[:0], h, value)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	} else {
		err = c.sendFrame(ctx, s, frame, h.Op)
	}
	if cap(frame) <= 64<<10 { // a large one goes to the garbage collector
		*bp = frame[:0]
		framePool.Put(bp)
	}
	return err
}

// sendFrame queues frame on s, waiting while the send queue is full (see writeFrame).
func (c *Client) sendFrame(ctx context.Context, s *session, frame []byte, op task.Op) error {
	wait := time.Millisecond
	for {
		err := s.link.send(frame)
		if !errors.Is(err, errSendQueueFull) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctxError(ctx, op.String()+" "+c.addr+": send queue full")
		case <-c.done:
			t.Stop()
			return ErrClosed
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// dispatch handles one frame from the server, in stream order: a reply completes its call, a
// push goes to the subscriptions and the near cache, a goodbye with an error code fails the
// session. On Linux it runs on the kcpnet engine's loop goroutine, shared by every session of
// the process, so it and everything it calls never block: push (Subscription.deliver and the
// near cache's apply take short locks and never wait on a channel; an ack is scheduled, not
// written), heartbeatReply, call.onReply (finishResync), the reply's buffered channel, and
// sessionFailed (the log line and the redial are in a goroutine). What may wait (the hello of a
// repair, a re-subscribe) runs in goroutines of its own.
func (c *Client) dispatch(s *session, body []byte) {
	var r reply
	value, err := wire.Decode(body, &r.Header)
	if err != nil {
		c.log.Warn("undecodable frame from server", "addr", c.addr, "err", err)
		return
	}
	if r.Header.ID == 0 {
		switch {
		case r.Header.Op == task.OpPush:
			c.push(&r.Header, value)
		case r.Header.Op == task.OpGoodbye && r.Header.Code != task.CodeOK:
			// The server dropped this conversation (the session expired, or it does not know
			// the conversation): redial now rather than when the silence says so.
			c.sessionFailed(s, fmt.Errorf("the server closed the conversation: %s %s", task.Code(r.Header.Code), r.Header.Msg))
		}
		return
	}
	r.Value = append([]byte(nil), value...)
	c.mu.Lock()
	cl := c.pending[r.Header.ID]
	delete(c.pending, r.Header.ID)
	c.mu.Unlock()
	if cl == nil {
		return
	}
	if r.Header.Op == task.OpHeartbeat && r.Header.Code == task.CodeOK {
		// In stream order: every push sent before this reply has been handled.
		c.heartbeatReply(cl.sentAt, &r.Header)
	}
	if cl.onReply != nil {
		cl.onReply(&r.Header)
	}
	cl.reply <- r
}

// sessionFailed tears down s (if it is still current), fails its calls with ErrUnavailable, and
// starts redialling. Safe to call more than once for the same session, and from dispatch: it
// never blocks.
func (c *Client) sessionFailed(s *session, cause error) {
	s.lost.Store(true)
	c.mu.Lock()
	if c.sess != s {
		// Not the current session (a hello that failed, or one already replaced): fail its
		// calls, nothing to redial.
		failed := c.takeCalls(s)
		c.mu.Unlock()
		for _, cl := range failed {
			close(cl.reply)
		}
		return
	}
	c.sess = nil
	c.ready = make(chan struct{}) // callers wait on it for the next session
	c.rc.err = nil                // ... or for the first attempt to fail
	failed := c.takeCalls(s)
	closed := c.closed
	if !closed {
		// Under mu, which Close takes to set closed before it waits: the redial is counted
		// before Close's Wait, whichever goroutine this is (the engine's loop is not counted).
		c.wg.Add(1)
	}
	c.mu.Unlock()
	s.link.close()
	for _, cl := range failed {
		close(cl.reply)
	}
	if !closed {
		go c.redial(cause, len(failed))
	}
}

// takeCalls removes and returns the calls in flight on s. Caller holds c.mu.
func (c *Client) takeCalls(s *session) []*call {
	var calls []*call
	for id, cl := range c.pending {
		if cl.sess == s {
			calls = append(calls, cl)
			delete(c.pending, id)
		}
	}
	return calls
}

// redial reconnects with exponential back-off and jitter until it succeeds or the client closes;
// a call that finds the last failure old asks it to try at once (kickRedial). cause and failed
// are what sessionFailed saw, logged here rather than on the engine's loop.
func (c *Client) redial(cause error, failed int) {
	defer c.wg.Done()
	c.log.Warn("session lost; redialling", "addr", c.addr, "cause", cause, "failed_calls", failed)
	backoff := 50 * time.Millisecond
	for {
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-c.done:
			t.Stop()
			return
		case <-t.C:
		case <-c.kick:
			t.Stop()
		}
		c.redials.Add(1)
		if err := c.connect(context.Background()); err == nil || errors.Is(err, ErrClosed) {
			return
		}
		backoff = min(2*backoff, c.opts.maxBackoff)
	}
}

// current returns the live session, or nil while reconnecting.
func (c *Client) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Connected reports whether the client has a live session now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Close says goodbye, ends the session and fails calls in flight with ErrUnavailable. Safe to
// call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true) // from now on no heartbeat says hello again (a stray session)
		s := c.current()
		if s != nil && c.session.Load() != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			c.doOn(ctx, s, &wire.Header{Op: task.OpGoodbye}, nil) // best effort: the lease ends it anyway
			cancel()
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		c.stopTimers()
		c.stopWatch()
		if s != nil {
			c.sessionFailed(s, ErrClosed)
		}
		c.wg.Wait()
		c.subMu.Lock()
		subs := c.subs
		c.subs = nil
		c.subMu.Unlock()
		for _, sub := range subs {
			sub.close()
		}
	})
	return nil
}
