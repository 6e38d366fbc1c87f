package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/time/rate"

	"github.com/pipecache/pipecache/client/kcpnet"
	"github.com/pipecache/pipecache/transport/wire"
)

// IdleConfig is an idle-sessions run (pipecache-bench -idle-sessions): many sessions that say
// hello and then only heartbeat, as the long-lived, mostly idle clients of issue 16 do. Each is
// a real KCP conversation of one shared kcpnet engine, not an SDK client.
type IdleConfig struct {
	Addr      string        // the server, host:port
	Token     string        // auth token the hellos carry
	Sessions  int           // sessions to open and keep
	Heartbeat time.Duration // interval proposed in each hello; the server's answer rules. Default 30 s
	// Rate bounds new conversations per second (first opens and re-opens alike; 0: unpaced).
	// The server admits at most 2,000 per second and 250 per second per source address by
	// default (PROTOCOL.md, "Before the hello"); a faster client only meets silent refusals.
	Rate float64
	// MaxPending bounds the hellos waiting for their reply at once (new conversations the server
	// holds as pending); default 512, below the server's 800 or so.
	MaxPending int
	// HelloTimeout: a hello unanswered this long is given up, and its session opens again on a
	// fresh conversation. Default 5 s (the server's pending lifetime).
	HelloTimeout time.Duration
	// MaxMissed is how many heartbeats in a row may go unanswered (each found so when the next
	// is due) before the conversation is given up and the session resumed on a fresh one: the
	// protocol's "consider the server dead if nothing arrives for a few intervals". Default 2,
	// at most 255.
	MaxMissed int
	// HelloSize is how long a hello frame is made (padded): default 1000 bytes, as the SDK; at
	// least wire.MinHello.
	HelloSize int
	// Sockets is the UDP sockets per source address (kcpnet.Config.Sockets); default 1.
	Sockets int
	// SourceIPs are the source addresses, sessions spread over them round robin (none: the
	// kernel's choice, one address).
	SourceIPs []netip.Addr
	// CompactAfter releases a conversation's KCP state once it is idle this long
	// (kcpnet.Config.CompactAfter). Default 250 ms; negative: never.
	CompactAfter time.Duration
	Duration     time.Duration // how long the run lasts (the goodbyes come after)
	// The storm: at StormAt (once every session is open), Storm sessions drop their
	// conversations and resume on fresh ones, at most StormRate per second (0: as fast as
	// MaxPending allows). Storm 0: none.
	StormAt   time.Duration
	Storm     int
	StormRate float64
	PID       int           // the server's process id, for its RSS and CPU (0: not read)
	Progress  time.Duration // period of the progress line; default 5 s
	// ServerStats asks the server for its stats (sessions, conversations) with every progress
	// line, on the first session.
	ServerStats bool
	// Goodbye ends every session with a goodbye at the end (within goodbyeTimeout), so that the
	// server frees them at once instead of at their lease.
	Goodbye bool
}

// Defaults and bounds of IdleConfig.
const (
	defaultIdleHeartbeat = 30 * time.Second
	defaultMaxPending    = 512
	defaultHelloTimeout  = 5 * time.Second
	defaultMaxMissed     = 2
	defaultHelloSize     = 1000
	defaultCompactAfter  = 250 * time.Millisecond
	defaultProgress      = 5 * time.Second
	maxHelloSize         = 4000 // well within wire.MaxHeader + the pending frame limit (8 KiB)
	goodbyeTimeout       = 10 * time.Second
	idleName             = "pipecache-bench-idle" // the hellos' name, in the server's log
)

// ErrIdleConfig: an IdleConfig field out of range.
var ErrIdleConfig = errors.New("bench: bad idle-sessions configuration")

func (c *IdleConfig) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = defaultIdleHeartbeat
	}
	if c.MaxPending <= 0 {
		c.MaxPending = defaultMaxPending
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = defaultHelloTimeout
	}
	if c.MaxMissed <= 0 {
		c.MaxMissed = defaultMaxMissed
	}
	if c.HelloSize <= 0 {
		c.HelloSize = defaultHelloSize
	}
	if c.Sockets <= 0 {
		c.Sockets = 1
	}
	switch {
	case c.CompactAfter == 0:
		c.CompactAfter = defaultCompactAfter
	case c.CompactAfter < 0:
		c.CompactAfter = 0 // kcpnet: off
	}
	if c.Progress <= 0 {
		c.Progress = defaultProgress
	}
}

func (c *IdleConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrIdleConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Sessions <= 0:
		return bad("sessions %d: give at least one", c.Sessions)
	case c.Sessions > 1<<26:
		return bad("sessions %d: at most %d", c.Sessions, 1<<26)
	case c.Duration <= 0:
		return bad("give a duration")
	case c.HelloSize < wire.MinHello || c.HelloSize > maxHelloSize:
		return bad("hello size %d out of [%d, %d]", c.HelloSize, wire.MinHello, maxHelloSize)
	case c.MaxMissed > math.MaxUint8:
		return bad("max missed %d: at most %d", c.MaxMissed, math.MaxUint8)
	case c.Heartbeat < 10*time.Millisecond:
		return bad("heartbeat %v: at least 10ms", c.Heartbeat)
	case c.Rate < 0 || c.StormRate < 0:
		return bad("rates must not be negative")
	case c.Storm < 0 || c.Storm > c.Sessions:
		return bad("storm %d out of [0, %d sessions]", c.Storm, c.Sessions)
	case c.StormAt < 0:
		return bad("storm-at %v is negative", c.StormAt)
	}
	return nil
}

// Idle is one idle-sessions run: create it with NewIdle, run it once with Run; Snapshot may be
// called meanwhile, from any goroutine.
type Idle struct {
	cfg     IdleConfig
	addr    netip.AddrPort
	start   time.Time
	eng     *kcpnet.Engine
	sess    []idleSession
	q       openQueue
	slots   chan struct{} // a token per hello in flight (MaxPending)
	limiter *rate.Limiter
	c       idleCounters
	hist    idleHists

	waitMu sync.Mutex  // guards waits
	waits  []helloWait // hellos in flight, oldest first, for the timeout

	cycle      atomic.Int64 // the negotiated heartbeat interval, ns (0 until a hello is answered)
	allOpenAt  atomic.Int64 // when every session was open at once for the first time (0: not yet)
	stopping   atomic.Bool  // the run is over: nothing opens again
	srvStats   atomic.Pointer[map[string]int64]
	storm      stormState
	ran        atomic.Bool
	hdr        wire.Header // the engine loop's own (Frame)
	loopBuf    []byte      // frames built on the engine loop
	openBuf    []byte      // frames built by the opener
	beatBuf    []byte      // frames built by the heartbeat scheduler
	reportBuf  []byte      // frames built by the reporter (stats requests)
	goodbyeBuf []byte      // frames built by the goodbye phase
}

// idleHists are the latency histograms (microseconds), guarded by mu: written on the engine
// loop, read by the reporter.
type idleHists struct {
	mu        sync.Mutex
	beat      *hdrhistogram.Histogram // heartbeat round trips, the whole run
	beatSince *hdrhistogram.Histogram // since the last progress line
	hello     *hdrhistogram.Histogram // hello round trips
	storm     *hdrhistogram.Histogram // storm start to each storm session resumed
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// NewIdle checks cfg, resolves the server's address and makes sure every source address can be
// bound. Nothing is sent before Run.
func NewIdle(cfg IdleConfig) (*Idle, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("bench: server address %q: %w", cfg.Addr, err)
	}
	addr := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
	for _, a := range cfg.SourceIPs {
		if err := checkBindable(a, addr.Addr()); err != nil {
			return nil, err
		}
	}
	r := &Idle{cfg: cfg, addr: addr, sess: make([]idleSession, cfg.Sessions),
		slots: make(chan struct{}, cfg.MaxPending)}
	r.q.init(cfg.Sessions)
	for i := range r.sess {
		r.sess[i].idx = int32(i)
	}
	r.hist = idleHists{beat: newHist(), beatSince: newHist(), hello: newHist(), storm: newHist()}
	r.limiter = rate.NewLimiter(limitOf(cfg.Rate), burstOf(cfg.Rate))
	return r, nil
}

// checkBindable fails if a source address is of the server's other family or not this host's.
func checkBindable(a, server netip.Addr) error {
	if a.Is4() != server.Is4() {
		return fmt.Errorf("%w: source address %s for a server at %s (another address family)", ErrIdleConfig, a, server)
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		return fmt.Errorf("%w: source address %s cannot be bound (not an address of this host?): %w", ErrIdleConfig, a, err)
	}
	return pc.Close()
}

func limitOf(perSec float64) rate.Limit {
	if perSec <= 0 {
		return rate.Inf
	}
	return rate.Limit(perSec)
}

// burstOf lets 20 ms of opens go at once, so that pacing needs no timer per open.
func burstOf(perSec float64) int { return max(1, int(perSec/50)) }

// now is the run's clock: nanoseconds since Run began.
func (r *Idle) now() int64 { return int64(time.Since(r.start)) }

// sourceFor is session i's source address (the zero Addr: the kernel's choice).
func (r *Idle) sourceFor(i int32) netip.Addr {
	if n := len(r.cfg.SourceIPs); n > 0 {
		return r.cfg.SourceIPs[int(i)%n]
	}
	return netip.Addr{}
}

// Run opens the sessions, keeps them alive with heartbeats until cfg.Duration has passed or ctx
// ends (running the storm on the way, if asked), writes a progress line to progress (may be
// nil) every cfg.Progress, says goodbye, and returns what it measured. It may be called once.
func (r *Idle) Run(ctx context.Context, progress io.Writer) (IdleResult, error) {
	if !r.ran.CompareAndSwap(false, true) {
		return IdleResult{}, errors.New("bench: an idle run runs once")
	}
	// ACKs leave at once (AckDelay < 0): an idle session has no next request for them to ride
	// on, and acknowledged replies let the conversation go quiet (and compact) sooner.
	eng, err := kcpnet.NewEngine(kcpnet.Config{Sockets: r.cfg.Sockets, CompactAfter: r.cfg.CompactAfter, AckDelay: -1})
	if err != nil {
		return IdleResult{}, fmt.Errorf("bench: %w", err)
	}
	r.eng = eng
	defer eng.Close()
	r.start = time.Now()
	rep := newReporter(r, progress)
	runCtx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.opener(runCtx) })
	wg.Go(func() { r.beater(runCtx) })
	wg.Go(func() { rep.run(runCtx) })
	if r.cfg.Storm > 0 {
		wg.Go(func() { r.runStorm(runCtx) })
	}
	<-runCtx.Done()
	wg.Wait()
	elapsed := time.Since(r.start)
	res := r.result(elapsed, rep)
	r.stopping.Store(true)
	r.abandonHellos()
	if r.cfg.Goodbye {
		res.Goodbyes = r.sayGoodbye()
	}
	return res, nil
}

// Snapshot returns the counters so far.
func (r *Idle) Snapshot() IdleCounts { return r.c.snapshot() }
