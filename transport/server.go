package transport

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// Loop is what the server needs from the stage loop that drives it (stages/loop.Loop provides it).
type Loop interface {
	AddFD(fd int, events uint32, h func(events uint32)) error
	ModFD(fd int, events uint32) error
	RemoveFD(fd int) error
	Clock() *timer.Clock
	Wheel() *timer.Wheel
	Ready() *timer.Ready
}

// Handler receives what conversations deliver. Its methods run on the loop goroutine.
type Handler interface {
	// Frame is called with each complete frame body (see wire.Splitter.Next). body is valid only
	// during the call.
	Frame(c *Conn, body []byte)
	// Closed is called once when a conversation ends: expired, evicted, or closed by the
	// handler. c must not be used afterwards.
	Closed(c *Conn, reason error)
}

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	Addr         string        // listen address, host:port; default "127.0.0.1:7070"
	ReusePort    bool          // SO_REUSEPORT, to shard one port over several loops
	SocketBuffer int           // SO_RCVBUF and SO_SNDBUF; default 4 MiB
	Batch        int           // datagrams per recvmmsg/sendmmsg; default 64
	MTU          int           // KCP MTU; default 1400 (kcp-go's)
	Window       int           // KCP send and receive windows, in segments; default 256
	Interval     time.Duration // retransmission check interval while data is unacknowledged; default 10 ms
	// AckDelay is how long an ACK the client's request asked for may wait for the reply to
	// ride with (acks.go); default 5 ms, negative: ACKs leave at once.
	AckDelay    time.Duration
	IdleTimeout time.Duration // an established conversation no session uses (SetLive) silent this long is dropped; default 60 s
	MaxConns    int           // conversations at most; default 100,000
	// MaxSendQueue bounds one conversation's segments queued and not yet acknowledged: Send
	// refuses a frame of more than one segment that would take the queue beyond it
	// (ErrSendQueueFull); a frame of one segment (a reply without a value, an error, a
	// heartbeat's reply) it never refuses, so that every request can be answered. Default
	// 32,768 (about 45 MB at the default MTU).
	MaxSendQueue int
	// SendQueueHigh is back-pressure: while more segments than this wait in a conversation's
	// send queue, the server reads no more of its frames (they wait in KCP, whose receive
	// window then closes, so the peer's sends wait too) until its ACKs bring the queue below.
	// Default MaxSendQueue/4.
	SendQueueHigh int

	Logger *slog.Logger
	// Crypt, if set, encrypts every datagram as kcp-go's UDPSession does with the same
	// BlockCrypt (transport/dgram/crypt.go): kcp.NewAESGCMCrypt (authenticated), or a block
	// cipher such as kcp.NewAESBlockCrypt (legacy: a CRC32, not a MAC). Datagrams that do not
	// decrypt are dropped and counted (Stats.Unauthenticated).
	Crypt kcp.BlockCrypt
	// NoCompaction keeps every conversation's KCP and buffers while it is idle (idle.go): a
	// kill switch.
	NoCompaction bool

	// Pending conversations (not yet established by a hello; see admit.go). Each holds at most
	// about PendingConnBytes, so PendingMemory bounds them all; MaxPending, if set, caps their
	// number instead.
	PendingMemory    int64         // bytes for all pending conversations; default 32 MiB
	MaxPending       int           // pending conversations at most; default PendingMemory / PendingConnBytes
	PendingRate      int           // new conversations admitted per second; default 2,000
	PendingTTL       time.Duration // a pending conversation not established this long after it began is dropped; default 5 s
	PendingPerSource int           // pending conversations one source address may hold; default MaxPending/8 (at least 4)
	SourceRate       int           // new conversations per second from one source address; default PendingRate/8 (at least 16)
	// Vouch, if set, is asked about the first frame of every datagram that would begin a
	// conversation (a client's hello: PROTOCOL.md has it first): a conversation it vouches for
	// (a valid token, a resume token this server issued) is admitted on a budget of its own,
	// the same rates and caps again, which no anonymous conversation takes or evicts (admit.go).
	// It runs on the loop goroutine and must not keep frame.
	Vouch func(frame []byte) bool

	// RetransmitBudget is how many KCP retransmission checks one loop iteration runs at most;
	// the others wait a period of their own, and the server counts as behind (overload.go).
	// Default 512.
	RetransmitBudget int
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7070"
	}
	def(&c.SocketBuffer, 4<<20)
	def(&c.Batch, 64)
	def(&c.MTU, 1400)
	def(&c.Window, 256)
	def(&c.MaxConns, 100_000)
	def(&c.MaxSendQueue, 32768)
	def(&c.SendQueueHigh, c.MaxSendQueue/4)
	def(&c.RetransmitBudget, 512)
	if c.PendingMemory <= 0 {
		c.PendingMemory = 32 << 20
	}
	def(&c.MaxPending, int(c.PendingMemory/PendingConnBytes))
	def(&c.PendingRate, 2000)
	def(&c.PendingPerSource, max(4, c.MaxPending/8))
	def(&c.SourceRate, max(16, c.PendingRate/8))
	defDur(&c.Interval, 10*time.Millisecond)
	if c.AckDelay == 0 {
		c.AckDelay = 5 * time.Millisecond
	}
	defDur(&c.IdleTimeout, 60*time.Second)
	defDur(&c.PendingTTL, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Errors.
var (
	ErrSendQueueFull = errors.New("transport: conversation send queue full") // the peer is not reading fast enough
	ErrConnClosed    = errors.New("transport: conversation closed")
	ErrIdle          = errors.New("transport: conversation idle too long")
	ErrBadStream     = errors.New("transport: malformed stream")
	ErrServerClosed  = errors.New("transport: server closed")
	ErrNotHello      = errors.New("transport: pending conversation closed: no hello")
	ErrEvicted       = errors.New("transport: pending conversation evicted for a newer one")
	// ErrNotValidated: the peer acknowledged nothing the server sent within PendingTTL, or
	// acknowledged what it was never sent: its address may be forged (validate.go).
	ErrNotValidated = errors.New("transport: conversation closed: the peer acknowledged nothing the server sent")
)

type convKey struct {
	addr netip.AddrPort
	conv uint32
}

// Stats counts what the server has done.
type Stats struct {
	DatagramsIn, DatagramsOut uint64
	BytesIn, BytesOut         uint64
	Malformed                 uint64 // datagrams too short or not KCP, truncated, or rejected by KCP
	Unauthenticated           uint64 // datagrams that did not decrypt with Crypt (tampered, another key or none): dropped
	Refused                   uint64 // datagrams for new conversations refused (caps or rates)
	NotStart                  uint64 // datagrams for unknown conversations that do not begin one (no push of sn 0)
	Evicted                   uint64 // pending conversations closed to make room for newer ones
	AmplificationDropped      uint64 // datagrams to unvalidated conversations not sent: over 3x what they sent us
	Validated                 uint64 // conversations whose peer acknowledged what the server sent (validate.go)
	Resets                    uint64 // resets sent: data for a conversation the server does not know (admit.go)
	SendDropped               uint64 // datagrams the kernel refused (EPERM, ENOBUFS...): lost, KCP retransmits
	SendBlocked               uint64 // times the socket buffer was full and EPOLLOUT was armed
	Conns, Pending            int    // conversations now, and how many are not yet established
	Opened, Closed            uint64 // conversations created and ended
	Idle                      int    // conversations compact now: idle, their KCP given back (idle.go)
	Compactions               uint64 // times a conversation was compacted

	// Overload (overload.go): what the server shed, and whether it is shedding now.
	Resends        uint64 // retransmission checks that resent data
	Backoffs       uint64 // checks spaced out because the peer had not answered two resends
	ChecksDeferred uint64 // checks put off: the iteration's retransmission budget was spent
	ShedNew        uint64 // datagrams that would have begun a conversation, dropped while behind
	BehindSpells   uint64 // times the server began to count as behind
}

// Server owns a UDP socket and every KCP conversation on it. It belongs to one loop goroutine.
type Server struct {
	cfg     Config
	log     *slog.Logger
	sock    dgram.Socket
	rb      *dgram.RecvBatch
	sb      *dgram.SendBatch // the datagrams of this iteration, sealed
	crypt   kcp.BlockCrypt   // Config.Crypt: opens what rb receives (sb seals)
	loop    Loop
	handler Handler

	conns  map[convKey]*Conn
	byID   map[uint64]*Conn
	nextID uint64
	adm    admission // pending conversations: caps, rates, sources (admit.go)

	dirty     []*Conn
	flushAll  timer.ReadyEntry
	wantOut   bool // EPOLLOUT armed
	stats     counters
	closed    bool
	stopped   bool          // StopReading was called
	frameRoom int           // bytes of frame payload per KCP segment
	kcpMTU    int           // KCP's MTU: the datagram's, less the encryption header
	holding   *Conn         // the conversation whose ACK-only output may be held now (acks.go)
	spares    []engine      // engines given back by idle conversations (idle.go)
	rng       *rand.ChaCha8 // each conversation's ts offset (validate.go): unpredictable
	ovl       overload      // retransmission budget, behind or not (overload.go)
}

// NewServer binds the socket (so Addr is known at once) without attaching it to a loop.
func NewServer(cfg Config, h Handler) (*Server, error) {
	cfg.setDefaults()
	if cfg.MTU < 256 || cfg.MTU > dgram.MaxDatagram {
		return nil, fmt.Errorf("transport: MTU %d out of range [256, %d]", cfg.MTU, dgram.MaxDatagram)
	}
	sock, err := listen(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, sock: sock, handler: h,
		rb: dgram.NewRecvBatch(cfg.Batch), sb: dgram.NewSendBatch(sock.FD, sock.Family, cfg.Batch, cfg.Crypt),
		conns: make(map[convKey]*Conn), byID: make(map[uint64]*Conn),
		crypt: cfg.Crypt,
	}
	s.kcpMTU = cfg.MTU - dgram.Overhead(cfg.Crypt) // datagrams stay within the MTU, nonce and CRC included
	s.frameRoom = s.kcpMTU - kcp.IKCP_OVERHEAD
	s.adm.init(s)
	s.flushAll.Fn = s.flush
	var seed [32]byte
	crand.Read(seed[:])
	s.rng = rand.NewChaCha8(seed)
	return s, nil
}

// listen opens the server's socket.
func listen(cfg *Config) (dgram.Socket, error) {
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return dgram.Socket{}, fmt.Errorf("transport: listen address %q: %w", cfg.Addr, err)
	}
	sock, err := dgram.Listen(dgram.SocketOptions{Addr: ua.AddrPort(), ReusePort: cfg.ReusePort, Buffer: cfg.SocketBuffer})
	if err != nil {
		return dgram.Socket{}, fmt.Errorf("transport: %w", err)
	}
	return sock, nil
}

// Addr returns the address the server is bound to.
func (s *Server) Addr() netip.AddrPort { return s.sock.Local }

// Attach registers the socket with the loop. Call once, before the loop starts or on it.
func (s *Server) Attach(l Loop) error {
	s.loop = l
	s.adm.attach(l)
	return l.AddFD(s.sock.FD, unix.EPOLLIN, s.onReady)
}

// counters are written by the loop goroutine and read by anyone (uncontended atomics).
type counters struct {
	datagramsIn, datagramsOut, bytesIn, bytesOut atomic.Uint64
	malformed, refused, sendDropped, sendBlocked atomic.Uint64
	notStart, evicted, ampDropped, resets        atomic.Uint64
	validated, unauthenticated                   atomic.Uint64
	opened, closed                               atomic.Uint64
	conns, pending, idle                         atomic.Int64
	compactions                                  atomic.Uint64
	resends, backoffs, checksDeferred, shedNew   atomic.Uint64
	behindSpells                                 atomic.Uint64
}

// Stats returns the server's counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		DatagramsIn: c.datagramsIn.Load(), DatagramsOut: c.datagramsOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Malformed: c.malformed.Load(), Refused: c.refused.Load(), NotStart: c.notStart.Load(),
		Evicted: c.evicted.Load(), AmplificationDropped: c.ampDropped.Load(), Resets: c.resets.Load(),
		Validated: c.validated.Load(), Unauthenticated: c.unauthenticated.Load(),
		SendDropped: c.sendDropped.Load(), SendBlocked: c.sendBlocked.Load(),
		Conns: int(c.conns.Load()), Pending: int(c.pending.Load()),
		Opened: c.opened.Load(), Closed: c.closed.Load(),
		Idle: int(c.idle.Load()), Compactions: c.compactions.Load(),
		Resends: c.resends.Load(), Backoffs: c.backoffs.Load(), ChecksDeferred: c.checksDeferred.Load(),
		ShedNew: c.shedNew.Load(), BehindSpells: c.behindSpells.Load(),
	}
}

// Conn returns the conversation with the given id, or nil if it has ended.
func (s *Server) Conn(id uint64) *Conn { return s.byID[id] }

func (s *Server) onReady(events uint32) {
	if events&unix.EPOLLOUT != 0 {
		s.sendQueued()
	}
	if events&(unix.EPOLLIN|unix.EPOLLERR) != 0 {
		s.receive()
	}
}

// receive drains the socket (edge-triggered: until EAGAIN), a batch at a time.
func (s *Server) receive() {
	read := 0
	defer func() { s.noteBacklog(read) }()
	for errs := 0; !s.closed; {
		n, err := s.rb.Recv(s.sock.FD)
		if err != nil {
			// ECONNREFUSED and friends report an earlier send's ICMP error: weather, not death.
			// An error that persists would spin the loop: give up on this wake-up instead (the
			// next datagram wakes us again).
			if errs++; errs > maxRecvErrors {
				s.log.Error("recvmmsg keeps failing", "err", err)
				return
			}
			s.log.Debug("recvmmsg", "err", err)
			continue
		}
		if n == 0 {
			return
		}
		errs = 0
		read += n
		for i := range n {
			data, from, ok := s.rb.Datagram(i)
			if !ok {
				s.stats.datagramsIn.Add(1)
				s.stats.malformed.Add(1)
				continue
			}
			s.Inject(data, from)
		}
	}
}

// Inject handles one datagram as if it had been received from from (it may be decrypted in
// place). The loop feeds every received datagram through it; tests and fuzz targets use it to
// drive the server without a socket. Loop goroutine only.
func (s *Server) Inject(data []byte, from netip.AddrPort) {
	s.stats.datagramsIn.Add(1)
	s.stats.bytesIn.Add(uint64(len(data)))
	size := len(data)
	data, ok := dgram.Open(s.crypt, data)
	if !ok {
		s.stats.unauthenticated.Add(1)
		return
	}

	s.input(data, size, from)
}

// maxRecvErrors is how many recvmmsg errors in a row one wake-up tolerates.
const maxRecvErrors = 16

// input feeds one datagram (the KCP data of size bytes on the wire) to its conversation,
// creating the conversation if it is new and admissible, and hands complete frames to the
// handler.
func (s *Server) input(data []byte, size int, from netip.AddrPort) {
	if len(data) < kcp.IKCP_OVERHEAD {
		s.stats.malformed.Add(1)
		return
	}
	key := convKey{addr: from, conv: binary.LittleEndian.Uint32(data)}
	c := s.conns[key]
	if c == nil {
		if c = s.adm.admit(key, data); c == nil {
			return
		}
	}
	if !c.validated {
		c.bytesIn += uint64(size)
	}
	if !c.unstampIn(data) {
		s.log.Info("closing conversation: acknowledgments of what it was never sent", "conn", c.id, "addr", c.key.addr)
		c.Close(ErrNotValidated)
		return
	}
	c.heard(s.loop.Clock().Nanos()) // the peer is alive: retransmit checks at its pace again
	s.holding = c
	ret := c.engine().Input(data, kcp.IKCP_PACKET_REGULAR, false)
	s.holding = nil
	if ret < 0 {
		s.stats.malformed.Add(1)
	}
	s.markDirty(c) // ACKs leave at the end of this iteration, with any replies
	s.readFrames(c)
}

// readFrames delivers c's complete frames to the handler, unless (and until) c's send queue is
// over SendQueueHigh: then the frames wait, in the splitter and in KCP, whose receive window
// closes once its queue is full, until input finds the queue drained by the peer's ACKs.
func (s *Server) readFrames(c *Conn) {
	for !c.closed && !c.backedUp() {
		size := c.kcp.PeekSize()
		if size < 0 {
			break
		}
		// A segment may be empty (size 0): Recv still takes it off the queue, or it would hold
		// back everything behind it for good.
		n := c.kcp.Recv(c.in.Buffer(size))
		if n < 0 {
			break
		}
		c.in.Commit(n)
	}
	for !c.closed && !c.backedUp() {
		body, err := c.in.Next()
		if err != nil {
			s.log.Warn("closing conversation: malformed stream", "conn", c.id, "addr", c.key.addr, "err", err)
			c.Close(fmt.Errorf("%w: %w", ErrBadStream, err))
			return
		}
		if body == nil {
			break
		}
		s.handler.Frame(c, body)
	}
	if !c.closed {
		c.in.Shrink(64 << 10)
	}
}

// open creates a pending conversation: a small receive window and frame limit until a hello
// establishes it (admit.go says why).
func (s *Server) open(key convKey) *Conn {
	s.nextID++
	now := s.loop.Clock().Nanos()
	c := &Conn{srv: s, key: key, id: s.nextID, created: now, tsOff: uint32(s.rng.Uint64())}
	c.out = c.output // one closure for the conversation's life: engines take it (idle.go)
	c.kcp = s.newKCP(key.conv, c.out, pendingWindow)
	c.in.Limit = PendingFrame
	c.retransmit.Fn = c.onRetransmit
	c.tick = s.cfg.Interval
	c.expire.Fn = c.onExpire
	c.ackTimer.Fn = c.onAckTimer
	s.conns[key] = c
	s.byID[c.id] = c
	s.stats.conns.Store(int64(len(s.conns)))
	s.stats.opened.Add(1)
	s.loop.Wheel().Schedule(&c.expire, now+int64(s.cfg.PendingTTL))
	return c
}

func (s *Server) markDirty(c *Conn) {
	if !c.dirty {
		c.dirty = true
		s.dirty = append(s.dirty, c)
	}
	s.loop.Ready().Add(&s.flushAll)
}

// flush is the ReadyTimer callback: flush every conversation that received or queued data this
// iteration (its ACKs and replies share datagrams), then send every datagram in one sendmmsg.
func (s *Server) flush() {
	now := s.loop.Clock().Nanos()
	s.ovl.checks = 0 // the end of an iteration: the retransmission budget is whole again
	for i, c := range s.dirty {
		s.dirty[i] = nil
		c.dirty = false
		if c.closed || c.kcp == nil { // a compact conversation has nothing to flush
			continue
		}
		s.holding = c // a datagram of nothing but ACKs may wait for the reply
		dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
		s.holding = nil
		if c.kcp.WaitSnd() > 0 {
			if !c.retransmit.Scheduled() {
				s.loop.Wheel().Schedule(&c.retransmit, now+int64(c.tick))
			}
		} else {
			c.compact()
		}
	}
	s.dirty = s.dirty[:0]
	s.sendQueued()
}

// sendQueued sends the batch; on a full socket buffer it arms EPOLLOUT and keeps the rest.
func (s *Server) sendQueued() {
	if s.closed {
		return
	}
	r, err := s.sb.Send()
	s.stats.datagramsOut.Add(uint64(r.Datagrams))
	s.stats.sendDropped.Add(uint64(r.Dropped))
	switch {
	case err == dgram.ErrWouldBlock && !s.wantOut && !s.stopped:
		s.wantOut = true
		s.stats.sendBlocked.Add(1)
		s.loop.ModFD(s.sock.FD, unix.EPOLLIN|unix.EPOLLOUT)
	case err == nil && s.wantOut && !s.stopped:
		s.wantOut = false
		s.loop.ModFD(s.sock.FD, unix.EPOLLIN)
	}
}

// emit queues one datagram of conversation output; a full batch is sent first.
func (s *Server) emit(to netip.AddrPort, data []byte) {
	if !s.sb.Queue(to, data, nil) {
		s.sendQueued()
		if !s.sb.Queue(to, data, nil) {
			s.stats.sendDropped.Add(1) // socket full and batch full: lost; KCP retransmits
			return
		}
	}
	s.stats.bytesOut.Add(uint64(len(data) + dgram.Overhead(s.crypt)))
}

func (s *Server) drop(c *Conn, reason error) {
	delete(s.conns, c.key)
	delete(s.byID, c.id)
	if !c.established {
		s.adm.leave(c)
	}
	s.stats.conns.Store(int64(len(s.conns)))
	s.stats.closed.Add(1)
	s.loop.Wheel().Cancel(&c.retransmit)
	s.loop.Wheel().Cancel(&c.expire)
	s.handler.Closed(c, reason)
}

// StopReading stops taking datagrams: the socket leaves the loop's epoll, so requests that
// arrive from now on are not read (clients retransmit to the next server). Sending goes on.
// Loop goroutine only.
func (s *Server) StopReading() {
	if s.loop != nil && !s.closed && !s.stopped {
		s.stopped = true
		s.loop.RemoveFD(s.sock.FD)
	}
}

// CloseAll ends every conversation but keeps serving. Loop goroutine only.
func (s *Server) CloseAll() {
	for _, c := range s.conns {
		c.Close(ErrConnClosed)
	}
}

// Close ends every conversation and closes the socket. Loop goroutine only.
func (s *Server) Close() error {
	if s.closed {
		return ErrServerClosed
	}
	if s.loop == nil { // never attached: nothing to flush, no conversation
		s.closed = true
		return s.closeSocket()
	}
	s.flush()
	for _, c := range s.conns {
		c.Close(ErrServerClosed)
	}
	s.closed = true
	if s.loop != nil && !s.stopped {
		s.loop.RemoveFD(s.sock.FD)
	}
	return s.closeSocket()
}

func (s *Server) closeSocket() error {
	if err := unix.Close(s.sock.FD); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Conn is one KCP conversation. It belongs to the server's loop goroutine.
type Conn struct {
	srv         *Server
	key         convKey
	id          uint64
	kcp         *kcp.KCP // nil while compact: saved holds its state (idle.go)
	saved       dgram.State
	out         func([]byte, int) // c.output, made once
	in          wire.Splitter
	lastSeen    int64
	created     int64
	established bool
	live        bool // a session uses it: retransmit at KCP's pace (onRetransmit)
	dirty       bool
	closed      bool

	// Until the peer's address is validated (validate.go), bytes received from it and sent to
	// it (on the wire): output is held to the anti-amplification limit.
	bytesIn, bytesOut uint64
	validated         bool
	tsOff             uint32            // added to the ts of every push segment sent
	sentTS            [maxSentTS]uint32 // the last ts values sent while not validated (a ring)
	nSentTS           int               // how many were ever recorded
	badACKs           int               // ACKs of a ts never sent, while not validated

	// While pending (admit.go): its source, its lane and its place in the lane's list.
	src  *source
	lane lane

	olderPend, newPend *Conn
	retransmit         timer.Timer   // armed while sent data is unacknowledged
	tick               time.Duration // its period: Interval, doubling while the peer is silent
	resent             bool          // the check running now resent data (overload.go)
	resentAt           int64         // when a check last resent data
	unanswered         int           // checks in a row that resent with nothing heard in between
	expire             timer.Timer   // idle (or pending) expiry, checked lazily against lastSeen

	heldAck  []byte      // ACKs waiting for the reply to ride with (acks.go)
	ackTimer timer.Timer // sends them alone at AckDelay

	// Ctx is the owner's per-conversation state (the Incoming stage's session).
	Ctx any
}

// ID returns the conversation's handle, unique for the server's life (Task.Conn).
func (c *Conn) ID() uint64 { return c.id }

// LastHeard returns when the peer last sent a datagram, in the loop clock's nanoseconds.
func (c *Conn) LastHeard() int64 { return c.lastSeen }

// Addr returns the peer's address.
func (c *Conn) Addr() netip.AddrPort { return c.key.addr }

// Establish marks the conversation as accepted by the stage above (a successful hello): it no
// longer counts against the pending caps, gets its full receive window and frame size, and
// expires after IdleTimeout instead of PendingTTL, once its peer is validated too. Until the
// peer has acknowledged something the server sent (validate.go), what is sent to it counts
// against the anti-amplification limit however established it is.
func (c *Conn) Establish() {
	if c.established || c.closed {
		return
	}
	c.established, c.live = true, true
	c.srv.adm.leave(c)
	c.engine().WndSize(c.srv.cfg.Window, c.srv.cfg.Window)
	c.in.Limit = 0
	c.srv.markDirty(c) // the window update goes out
}

// backedUp reports whether c's send queue is over SendQueueHigh: its frames are not read.
func (c *Conn) backedUp() bool {
	return c.kcp != nil && c.kcp.WaitSnd() > c.srv.cfg.SendQueueHigh
}

// SetLive says whether a session uses the conversation: while one does, retransmissions run

// at KCP's pace however silent the peer (onRetransmit). Establish sets it; the stage above
// clears it when the session ends on a conversation that stays open (a goodbye).
func (c *Conn) SetLive(live bool) { c.live = live }

// Send queues a frame for the peer; it leaves at the end of the loop iteration. A frame is cut
// into segments of at most one MSS each (frg=0), so the peer's KCP reads it as a byte stream
// whatever its receive window. Send refuses a frame of more than one segment with
// ErrSendQueueFull when it would take the queue over MaxSendQueue (the peer is not
// acknowledging fast enough); a frame of one segment it always takes.
func (c *Conn) Send(frame []byte) error {
	if c.closed {
		return ErrConnClosed
	}
	k := c.engine()
	room := c.srv.frameRoom
	if len(frame) > room && k.WaitSnd()+(len(frame)+room-1)/room > c.srv.cfg.MaxSendQueue {
		return ErrSendQueueFull
	}
	for len(frame) > 0 {
		n := min(len(frame), c.srv.frameRoom)
		k.Send(frame[:n])
		frame = frame[n:]
	}
	c.srv.markDirty(c)
	return nil
}

// Close ends the conversation: Handler.Closed runs, and later datagrams for it are treated as
// a new conversation. Queued output is flushed once.
func (c *Conn) Close(reason error) {
	if c.closed {
		return
	}
	if c.kcp != nil {
		dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
		c.sendHeldAck()
	} else {
		c.srv.stats.idle.Add(-1)
	}
	c.closed = true
	c.srv.loop.Wheel().Cancel(&c.ackTimer)
	c.srv.drop(c, reason)
}

// output is KCP's output callback: it runs inside Input, flush and Update, and its buffer is
// reused after it returns, so the datagram is copied into the send batch at once.
func (c *Conn) output(buf []byte, size int) {
	data := buf[:size]
	c.stampOut(data)
	c.noteOutput(data)
	if c.holdAck(data) {
		return
	}
	c.emit(c.withHeldAck(data))
}

// emit sends one datagram of the conversation's, within the anti-amplification limit until the
// peer is validated.
func (c *Conn) emit(data []byte) {
	if !c.validated && !c.srv.adm.allowOut(c, len(data)) {
		return // lost, as far as KCP knows: it resends once the peer has sent more
	}
	c.srv.emit(c.key.addr, data)
}

// maxTick bounds the retransmission check period of a silent peer without a session.
const maxTick = time.Second

// onRetransmit lets KCP resend what is due. Nothing is due before a segment's RTO has passed
// (fast retransmits are triggered by the peer's ACKs, which input flushes at once), so while a
// session uses the conversation (Establish, until EndSession) the check runs every RTO/4, but
// at least every Interval and at most every maxTick: a resend leaves at most a quarter RTO late.
// A client waiting for a lost reply is silent, and a slower tick would delay the resend well
// past KCP's RTO (issue #13: p99 891 ms against 81 ms at 5% loss), so one unanswered resend
// keeps that pace. Following the RTO rather than ticking every Interval matters under
// overload: a server slow to answer raises every RTT, so it checks less often instead of
// spending more of its time on checks (at 100,000 sessions a 10 ms tick fed a collapse).
// A peer without a live session that has vanished would cost a tick until it expires
// (measured: 10,000 vanished clients at 10 ms kept half a core busy), so for those, while the
// peer stays silent, the period doubles up to maxTick; any datagram from it resets the period
// (see input). Beyond that, overload.go: resends that go unanswered back off, and one loop
// iteration runs at most RetransmitBudget checks.
func (c *Conn) onRetransmit() {
	if c.closed || c.kcp == nil {
		return
	}
	s := c.srv
	now := s.loop.Clock().Nanos()
	if !s.takeCheck(now) {
		s.loop.Wheel().Schedule(&c.retransmit, now+int64(c.tick))
		return
	}
	c.tick = c.update(now)
	s.loop.Ready().Add(&s.flushAll)
	if c.kcp.WaitSnd() > 0 {
		s.loop.Wheel().Schedule(&c.retransmit, now+int64(c.tick))
	} else {
		c.compact()
	}
}

// aliveTick is the retransmission check period for a peer that is heard from: a quarter of the
// current RTO, within [Interval, maxTick].
func (c *Conn) aliveTick() time.Duration {
	return min(max(time.Duration(c.rto())*time.Millisecond/4, c.srv.cfg.Interval), maxTick)
}

// onExpire runs when the conversation may have been silent too long. It checks lastSeen and
// re-arms for the remainder instead of rescheduling on every datagram.
func (c *Conn) onExpire() {
	// A pending conversation has PendingTTL from its first datagram, however chatty: resends
	// cannot keep one alive. So has one whose peer has acknowledged nothing, a session
	// notwithstanding: its address may be forged.
	deadline := c.created + int64(c.srv.cfg.PendingTTL)
	now := c.srv.loop.Clock().Nanos()
	switch {
	case !c.validated:
	case c.established && c.live:
		// A session's lease decides when a conversation it uses has been silent too long
		// (heartbeats may be up to a minute apart, and the lease three of them): the stage
		// above closes it when the session expires. Look again later, in case it stops
		// being live.
		deadline = max(now, c.lastSeen) + int64(c.srv.cfg.IdleTimeout)
	case c.established:
		deadline = c.lastSeen + int64(c.srv.cfg.IdleTimeout)
	}
	if deadline > now {
		c.srv.loop.Wheel().Schedule(&c.expire, deadline)
		return
	}
	if !c.validated && c.established {
		c.Close(ErrNotValidated)
		return
	}
	c.Close(ErrIdle)
}
