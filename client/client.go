package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

	silenceTimeout time.Duration // WithSilenceTimeout
	attemptTimeout time.Duration // Cluster only
	hooks          []Hook        // WithHook
	crypt          kcp.BlockCrypt
	cryptErr       error
	failFast       bool // while reconnecting, calls fail at once (a Cluster's nodes: it tries another)
}

// failFast makes calls fail at once while the client is reconnecting, rather than wait for the
// new session: a Cluster tries the key's next node instead.
func failFast() Option { return func(o *options) { o.failFast = true } }

// WithCryptKey encrypts the session with a pre-shared AES key of 16, 24 or 32 bytes, as a server
// started with the same key (-crypt-key-file) expects; see ReadKeyFile. A server without a key,
// or with another, never answers: Dial fails with ErrTimeout.
func WithCryptKey(key []byte) Option {
	return func(o *options) {
		if o.crypt, o.cryptErr = kcp.NewAESBlockCrypt(key); o.cryptErr != nil {
			o.cryptErr = fmt.Errorf("%w: encryption key: %w", ErrBadRequest, o.cryptErr)
		}
	}
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

// WithLogger sets where the client logs reconnects. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Client is a connection to one pipecached server, safe for concurrent use.
type Client struct {
	addr string
	opts options
	log  *slog.Logger

	mu      sync.Mutex    // guards sess, ready, pending, closed
	sess    *session      // nil while reconnecting
	ready   chan struct{} // closed once sess is set; a new one while reconnecting
	pending map[uint64]*call
	closed  bool
	closing atomic.Bool // Close has begun: no hello any more

	nextID   atomic.Uint64
	lastRecv atomic.Int64           // unix nanos of the last frame from the server
	resume   atomic.Pointer[string] // the session's resume token, once a hello succeeded
	beat     atomic.Int64           // negotiated heartbeat interval, nanoseconds
	session  atomic.Uint64          // the server's session id (0 before hello, or without sessions)

	subMu     sync.Mutex // guards subs, lastSeq, repairing, ackSent, ackArmed
	subs      []*Subscription
	lastSeq   uint64 // the last push sequence number delivered
	repairing bool   // a replay request is under way
	ackSent   uint64 // the last sequence number acknowledged to the server
	ackArmed  bool   // an acknowledgment is scheduled
	ackNow    chan struct{}
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

type session struct {
	kcp *kcp.UDPSession
	wmu sync.Mutex // serialises frames onto kcp (kcp-go's Write may block on a full window)
	buf []byte     // encoding buffer, guarded by wmu

	readErr atomic.Pointer[error] // why the reader stopped; stored before it fails the calls
	lost    atomic.Bool           // sessionFailed ran for it
}

// reply is a server's reply.
type reply struct {
	Header wire.Header
	Value  []byte // owned by the caller
}

type call struct {
	reply    chan reply // buffered 1; closed if the call failed without a reply
	sess     *session
	sentAt   int64 // unix nanos when the request was written
	timedOut bool  // set before reply is closed: the call outlived the call timeout
	// onReply, if set, runs in the reader when the reply arrives, in stream order: before any
	// frame that follows it is handled.
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
	c.wg.Add(2)
	go c.heartbeat()
	go c.acker()
	if c.near != nil {
		c.wg.Add(1)
		go c.near.unsubscriber()
	}
	if c.opts.silenceTimeout > 0 {
		c.wg.Add(1)
		go c.reaper()
	}
	return c, nil
}

// newClient applies the options; the client has no session yet and no goroutine.
func newClient(addr string, opts []Option) *Client {
	o := options{dialTimeout: 3 * time.Second, heartbeat: time.Second, deadAfter: 5 * time.Second,
		window: 256, maxBackoff: 2 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.silenceTimeout > 0 {
		o.heartbeat = min(o.heartbeat, o.silenceTimeout/2)
	}
	c := &Client{addr: addr, opts: o, log: o.logger, pending: make(map[uint64]*call), done: make(chan struct{}),
		ackNow: make(chan struct{}, 1), hook: chain(o.hooks), ready: make(chan struct{})}
	c.ackEvery.Store(64)
	c.ackBytes.Store(1 << 20)
	c.beat.Store(int64(o.heartbeat))
	if o.nearSize > 0 {
		c.near = newNearCache(c, o.nearSize, o.nearMaxStale)
	}
	return c
}

// connect opens a session: a new KCP conversation, its reader, and a hello on it (resuming
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

// connectOnce is one attempt of connect, on one conversation, for at most d.
func (c *Client) connectOnce(ctx context.Context, d time.Duration) error {
	ks, err := dialKCP(c.addr, c.opts.crypt)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ks.SetStreamMode(true)
	ks.SetNoDelay(1, 10, 2, 1) // fast mode: 10 ms interval, fast resend, no congestion window
	ks.SetWindowSize(c.opts.window, c.opts.window)
	ks.SetACKNoDelay(false) // ACKs ride on the next request or the next 10 ms flush
	ks.SetReadBuffer(4 << 20)
	ks.SetWriteBuffer(4 << 20)
	s := &session{kcp: ks}
	c.lastRecv.Store(time.Now().UnixNano())
	c.wg.Add(1)
	go c.read(s)
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := c.hello(actx, s); err != nil {
		ks.Close()
		if s.refused() {
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
		ks.Close()
		return ErrClosed
	}
	c.sess = s
	close(c.ready)
	c.mu.Unlock()
	return nil
}

// refused reports whether s's socket was refused: an ICMP port-unreachable came back (on Linux,
// where the socket is connected: see dialKCP), so nothing listens at the server's address.
func (s *session) refused() bool {
	err := s.readErr.Load()
	return err != nil && errors.Is(*err, syscall.ECONNREFUSED)
}

// hello opens (or resumes) the session on s.
func (c *Client) hello(ctx context.Context, s *session) error {
	req := helloRequest{Name: c.opts.name, Token: c.opts.token, HeartbeatMs: c.opts.heartbeat.Milliseconds()}
	if r := c.resume.Load(); r != nil {
		req.Resume = *r
		c.subMu.Lock()
		req.LastSeq = c.lastSeq
		c.subMu.Unlock()
	}
	body := req.encode()
	sent := time.Now().UnixNano()
	r, err := c.doOn(ctx, s, &wire.Header{Op: task.OpHello}, body)
	if err != nil && req.Resume != "" && errors.Is(err, ErrUnauthorized) {
		c.resume.Store(nil) // the session expired meanwhile: start a new one
		req.Resume = ""
		body = req.encode()
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
	var rep helloReply
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

// helloRequest and helloReply mirror the server's JSON (see PROTOCOL.md).
type helloRequest struct {
	Name        string `json:"name,omitempty"`
	Token       string `json:"token,omitempty"`
	HeartbeatMs int64  `json:"heartbeat_ms,omitempty"`
	Resume      string `json:"resume,omitempty"`
	LastSeq     uint64 `json:"last_seq,omitempty"`
	Pad         string `json:"pad,omitempty"` // ignored by the server: makes the hello wire.MinHello long
}

// helloSize is how long the SDK makes its hello frames: well over wire.MinHello, so that the
// server's anti-amplification limit (three times what a pending conversation sent) leaves room
// for several resends of the reply when datagrams are lost, as QUIC pads its first packets.
const helloSize = 1000

// encode returns the hello's JSON value, padded so that its frame is about helloSize bytes (the
// frame's header adds at least 30).
func (r helloRequest) encode() []byte {
	r.Pad = ""
	b, _ := json.Marshal(r)
	if need := helloSize - 30 - len(b); need > 0 {
		r.Pad = strings.Repeat(".", need+len(`,"pad":""`))
		b, _ = json.Marshal(r)
	}
	return b
}

type helloReply struct {
	Session     uint64 `json:"session"`
	Resume      string `json:"resume"`
	Resumed     bool   `json:"resumed"`
	HeartbeatMs int64  `json:"heartbeat_ms"`
	Seq         uint64 `json:"seq"`
	PushWindow  int    `json:"push_window"`
	PushBytes   int64  `json:"push_bytes"`
}

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
	case task.OpGet, task.OpMGet, task.OpPing, task.OpEcho, task.OpStats:
		return true
	}
	return false
}

// sessionFor returns the current session, waiting for one while the client reconnects (unless
// it fails fast: a Cluster's node).
func (c *Client) sessionFor(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, closed, ready := c.sess, c.closed, c.ready
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case s != nil:
			return s, nil
		case c.opts.failFast:
			return nil, fmt.Errorf("%w to %s", errNotSent, c.addr)
		}
		select {
		case <-ready:
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

// doOnWith is doOn with a callback run in the reader when the reply arrives (call.onReply).
func (c *Client) doOnWith(ctx context.Context, s *session, h *wire.Header, value []byte, onReply func(*wire.Header)) (reply, error) {
	h.ID = c.nextID.Add(1)
	cl := &call{reply: make(chan reply, 1), sess: s, sentAt: time.Now().UnixNano(), onReply: onReply}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return reply{}, ErrClosed
	}
	c.pending[h.ID] = cl
	c.mu.Unlock()

	err := c.writeFrame(s, h, value)
	if errors.Is(err, ErrTooLarge) {
		c.forget(h.ID)
		return reply{}, err
	}
	if err != nil {
		c.forget(h.ID)
		c.sessionFailed(s, err)
		return reply{}, err
	}
	select {
	case r, ok := <-cl.reply:
		if !ok {
			if cl.timedOut {
				return reply{}, fmt.Errorf("%w: %s %s: no reply, and the server silent for %v", ErrTimeout, h.Op, c.addr, c.silence())
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

// writeFrame writes one frame on s. It takes only the session's write lock, so a writer
// blocked on a full window never keeps the reader from matching replies. h.ID 0 is a frame
// that expects no reply (an ack).
func (c *Client) writeFrame(s *session, h *wire.Header, value []byte) error {
	h.V = wire.Version
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	s.buf, err = wire.AppendFrame(s.buf[:0], h, value)
	if err == nil {
		_, err = s.kcp.Write(s.buf) // one Write per frame: frames never interleave
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	} else {
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if cap(s.buf) > 64<<10 {
		s.buf = nil
	}
	return err
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// read is a session's reader goroutine: it cuts frames out of the stream and completes calls.
func (c *Client) read(s *session) {
	defer c.wg.Done()
	var sp wire.Splitter
	for {
		n, err := s.kcp.Read(sp.Buffer(64 << 10))
		if err != nil {
			s.readErr.Store(&err)
			c.sessionFailed(s, err)
			return
		}
		sp.Commit(n)
		c.lastRecv.Store(time.Now().UnixNano())
		for {
			body, err := sp.Next()
			if err != nil {
				c.log.Error("malformed stream from server", "addr", c.addr, "err", err)
				c.sessionFailed(s, err)
				return
			}
			if body == nil {
				break
			}
			c.dispatch(s, body)
		}
		sp.Shrink(1 << 20)
	}
}

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
		// In the reader, in stream order: every push sent before this reply has been handled.
		c.heartbeatReply(cl.sentAt, &r.Header)
	}
	if cl.onReply != nil {
		cl.onReply(&r.Header)
	}
	cl.reply <- r
}

// sessionFailed tears down s (if it is still current), fails its calls with ErrUnavailable, and
// starts redialling. Safe to call more than once for the same session.
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
	var failed []*call
	for id, cl := range c.pending {
		if cl.sess == s {
			failed = append(failed, cl)
			delete(c.pending, id)
		}
	}
	closed := c.closed
	c.mu.Unlock()
	s.kcp.Close()
	for _, cl := range failed {
		close(cl.reply)
	}
	if closed {
		return
	}
	c.log.Warn("session lost; redialling", "addr", c.addr, "cause", cause, "failed_calls", len(failed))
	c.wg.Add(1)
	go c.redial()
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

// redial reconnects with exponential back-off and jitter until it succeeds or the client closes.
func (c *Client) redial() {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-c.done:
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		c.redials.Add(1)
		if err := c.connect(context.Background()); err == nil || errors.Is(err, ErrClosed) {
			return
		}
		backoff = min(2*backoff, c.opts.maxBackoff)
	}
}

// heartbeat sends a heartbeat every negotiated interval; a server silent for deadAfter fails
// the session (and the client redials). A server that has expired the session answers
// "unauthorized": the client then says hello again.
func (c *Client) heartbeat() {
	defer c.wg.Done()
	t := time.NewTimer(time.Duration(c.beat.Load()))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		t.Reset(time.Duration(c.beat.Load()))
		s := c.current()
		if s == nil {
			continue
		}
		if c.near != nil {
			// Heartbeat replies are what lets the near cache serve: beat often enough that
			// entries stay usable while the session is healthy.
			t.Reset(min(time.Duration(c.beat.Load()), c.near.maxStale/3))
		}
		if silent := time.Since(time.Unix(0, c.lastRecv.Load())); silent > c.opts.deadAfter {
			c.sessionFailed(s, fmt.Errorf("server silent for %v", silent.Round(time.Millisecond)))
			continue
		}
		go c.beatOnce(s)
	}
}

func (c *Client) beatOnce(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.deadAfter)
	defer cancel()
	c.subMu.Lock()
	seq := c.lastSeq // the heartbeat acknowledges the pushes processed so far
	if seq > c.ackSent {
		c.ackSent, c.unacked = seq, 0
	}
	c.subMu.Unlock()
	_, err := c.doOn(ctx, s, &wire.Header{Op: task.OpHeartbeat, Seq: seq}, nil)
	switch {
	case errors.Is(err, ErrUnknownOp):
		c.doOn(ctx, s, &wire.Header{Op: task.OpPing}, nil) // a server without sessions
	case errors.Is(err, ErrUnauthorized) && c.closing.Load():
		// Close's goodbye got there first: the session is over, as asked.
	case errors.Is(err, ErrUnauthorized):
		// The server does not know this conversation's session: resume it (hello falls back to
		// a new session if it has expired).
		c.log.Warn("session not known on this conversation; saying hello again", "addr", c.addr)
		if err := c.hello(ctx, s); err != nil {
			c.sessionFailed(s, err)
		}
	}
}

// silence is how long the server may be silent before calls in flight fail: the silence
// timeout, or twice the negotiated heartbeat interval if the server imposed a longer one.
func (c *Client) silence() time.Duration {
	return max(c.opts.silenceTimeout, 2*time.Duration(c.beat.Load()))
}

// reaper fails the calls in flight whenever the server has been silent for silence(),
// checking eight times per period.
func (c *Client) reaper() {
	defer c.wg.Done()
	t := time.NewTicker(max(c.opts.silenceTimeout/8, time.Millisecond))
	defer t.Stop()
	var expired []*call
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if time.Now().UnixNano()-c.lastRecv.Load() < int64(c.silence()) {
			continue // the server spoke recently: alive
		}
		c.mu.Lock()
		for id, cl := range c.pending { // every call: a silent server answers none of them
			delete(c.pending, id)
			expired = append(expired, cl)
		}
		c.mu.Unlock()
		for _, cl := range expired {
			cl.timedOut = true
			close(cl.reply)
		}
		clear(expired)
		expired = expired[:0]
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
