//go:build linux

package kcpnet

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/transport/dgram"
)

// epoch is the origin of the engine's clock readings (monotonic nanoseconds).
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// Engine drives KCP conversations over shared UDP sockets from one loop goroutine. Create one
// with NewEngine, or share the process's with Default. Safe for concurrent use.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	epfd      int
	evfd      int
	pollFile  *os.File        // epfd in Go's netpoller; nil with Config.BlockingWait
	poll      syscall.RawConn // pollFile's
	ackDelay  int64           // Config.AckDelay in ns; <= 0: ACKs are not held
	compact   int64           // Config.CompactAfter in ns; 0: off
	isDefault bool

	mu     sync.Mutex // guards conns, peers, groups, closed, socket creation
	conns  map[uint32]*Conn
	peers  map[netip.AddrPort]*Conn // each address's conversations, a list through Conn.peerNext
	groups map[groupKey]*group
	closed bool
	socks  atomic.Pointer[[]*socket] // every socket by index; copied on write under mu

	// Requests to the loop, guarded by qmu; qn counts them so the loop can check without it.
	qmu        sync.Mutex
	armq       []armReq
	closeq     []*Conn
	funcs      []func()
	qn         atomic.Int32
	sleepUntil atomic.Int64 // while the loop sleeps, when it wakes by itself; 0 while awake
	woken      atomic.Bool  // an eventfd write is pending
	handoff    atomic.Bool  // a sender left dirty conversations for the loop to flush
	stopping   atomic.Bool
	fdMu       sync.RWMutex // held (read) while writing evfd, so that it is not closed meanwhile

	// Send combining: whoever holds sendMu flushes every dirty conversation (send.go).
	sendMu  sync.Mutex
	spare   []*Conn  // recycled dirty list, guarded by sendMu
	arms    []armReq // timers to request, guarded by sendMu
	dirtyMu sync.Mutex
	dirty   []*Conn
	ndirty  atomic.Int32

	lp    loopState // the loop goroutine's own
	stats counters
	done  chan struct{}
	once  sync.Once
}

type groupKey struct {
	crypt  kcp.BlockCrypt
	family int
	local  netip.Addr // the address the sockets are bound to; the zero Addr: unbound
}

// group is the sockets of one encryption key, address family and local address.
type group struct {
	socks []*socket
	next  int // round robin
}

type armReq struct {
	c  *Conn
	at int64
}

// counters are written by the loop and by senders, read by Stats (uncontended atomics).
type counters struct {
	datagramsIn, datagramsOut, bytesIn, bytesOut atomic.Uint64
	recvCalls, sendCalls, loopWakes, wakeups     atomic.Uint64
	epollWaits                                   atomic.Uint64
	timers, acksHeld, acksPiggy, acksAlone       atomic.Uint64
	combined, sendDropped, malformed, unknown    atomic.Uint64
	refusals, icmpOther, opened, closed          atomic.Uint64
	compactions, rebuilds                        atomic.Uint64
	conns, compacted                             atomic.Int64
}

var defaultEngine struct {
	once sync.Once
	e    *Engine
	err  error
}

// Default returns the process's engine, created with the default Config on first use. It is
// never closed (its Close returns an error).
func Default() (*Engine, error) {
	d := &defaultEngine
	d.once.Do(func() {
		if d.e, d.err = NewEngine(Config{}); d.e != nil {
			d.e.isDefault = true
		}
	})
	return d.e, d.err
}

// NewEngine starts an engine: its epoll instance, eventfd and loop goroutine. Sockets are opened
// by the first Dial that needs them. Close it when done (tests, benchmarks, tools).
func NewEngine(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, epfd: epfd, evfd: evfd, ackDelay: int64(cfg.AckDelay),
		compact: int64(cfg.CompactAfter),
		conns:   map[uint32]*Conn{}, peers: map[netip.AddrPort]*Conn{}, groups: map[groupKey]*group{},
		done: make(chan struct{})}
	e.socks.Store(&[]*socket{})
	e.lp.init(cfg.Batch)
	if err := dgram.Layout(); err != nil {
		e.compact = 0
		if cfg.CompactAfter > 0 {
			e.log.Warn("idle compaction unavailable", "err", err)
		}
	}
	if !cfg.BlockingWait {
		if err := e.registerPoller(); err != nil {
			unix.Close(epfd)
			unix.Close(evfd)
			return nil, err
		}
	}
	go e.run()
	return e, nil
}

// registerPoller puts the epoll fd in Go's netpoller (an epoll fd is pollable: it is readable
// when events are ready), so that the loop can sleep there (see wait).
func (e *Engine) registerPoller() error {
	if err := unix.SetNonblock(e.epfd, true); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	e.pollFile = os.NewFile(uintptr(e.epfd), "kcpnet-epoll")
	rc, err := e.pollFile.SyscallConn()
	if err != nil {
		return fmt.Errorf("kcpnet: epoll fd in the netpoller: %w", err)
	}
	e.poll = rc
	return nil
}

var errCloseDefault = errors.New("kcpnet: the default engine belongs to the process and is not closed")

// Close ends every conversation (Handler.Closed with ErrEngineClosed), stops the loop and
// closes the sockets. It waits for the loop to finish, so it must not be called from a Handler.
// Safe to call more than once.
func (e *Engine) Close() error {
	if e.isDefault {
		return errCloseDefault
	}
	e.once.Do(func() {
		e.stopping.Store(true)
		e.wake()
		<-e.done
	})
	return nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	c := &e.stats
	return Stats{
		Conns: int(c.conns.Load()), Sockets: len(*e.socks.Load()),
		DatagramsIn: c.datagramsIn.Load(), DatagramsOut: c.datagramsOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		RecvCalls: c.recvCalls.Load(), SendCalls: c.sendCalls.Load(),
		LoopWakes: c.loopWakes.Load(), EpollWaits: c.epollWaits.Load(), Wakeups: c.wakeups.Load(), Timers: c.timers.Load(),
		AcksHeld: c.acksHeld.Load(), AcksPiggybacked: c.acksPiggy.Load(), AcksAlone: c.acksAlone.Load(),
		Combined: c.combined.Load(), SendDropped: c.sendDropped.Load(), Malformed: c.malformed.Load(),
		Unknown: c.unknown.Load(), Refusals: c.refusals.Load(), ICMPOther: c.icmpOther.Load(),
		Opened: c.opened.Load(), Closed: c.closed.Load(),
		Compactions: c.compactions.Load(), Rebuilds: c.rebuilds.Load(), Compacted: int(c.compacted.Load()),
	}
}

// Dial opens a conversation with the KCP peer at addr (host:port) with a random conv. Nothing
// is sent until the first Send: KCP has no handshake.
func (e *Engine) Dial(addr string, o DialOptions) (*Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("kcpnet: dial %s: %w", addr, err)
	}
	return e.DialAddrPort(ua.AddrPort(), o)
}

// DialAddrPort is Dial with a resolved address.
func (e *Engine) DialAddrPort(to netip.AddrPort, o DialOptions) (*Conn, error) {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if err := checkDial(to, &o); err != nil {
		return nil, err
	}
	family := unix.AF_INET6
	if to.Addr().Is4() {
		family = unix.AF_INET
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.stopping.Load() {
		return nil, ErrEngineClosed
	}
	s, err := e.socketFor(groupKey{o.Crypt, family, o.LocalAddr.Unmap()})
	if err != nil {
		return nil, err
	}
	c := newConn(e, s, to, e.newConv(), &o)
	e.conns[c.conv] = c
	e.linkPeer(c)
	e.stats.opened.Add(1)
	e.stats.conns.Add(1)
	return c, nil
}

func checkDial(to netip.AddrPort, o *DialOptions) error {
	switch {
	case !to.IsValid() || to.Port() == 0 || to.Addr().IsUnspecified():
		return fmt.Errorf("%w: address %s", ErrBadConfig, to)
	case o.Handler == nil:
		return fmt.Errorf("%w: DialOptions.Handler is required", ErrBadConfig)
	case o.Window < 0:
		return fmt.Errorf("%w: window %d", ErrBadConfig, o.Window)
	case o.LocalAddr.IsValid() && o.LocalAddr.Unmap().Is4() != to.Addr().Is4():
		return fmt.Errorf("%w: local address %s for a peer at %s (another address family)", ErrBadConfig, o.LocalAddr, to)
	case o.Crypt != nil && !reflect.TypeOf(o.Crypt).Comparable():
		return fmt.Errorf("%w: a Crypt of type %T cannot key its sockets (use a pointer)", ErrBadConfig, o.Crypt)
	}
	return nil

}

// newConv returns a random conversation id not in use. Caller holds e.mu.
func (e *Engine) newConv() uint32 {
	for {
		if v := rand.Uint32(); v != 0 && e.conns[v] == nil {
			return v
		}
	}
}

// socketFor returns the next socket of key's group, opening the group's sockets on first use.
// Caller holds e.mu.
func (e *Engine) socketFor(key groupKey) (*socket, error) {
	g := e.groups[key]
	if g == nil {
		g = &group{}
		for range e.cfg.Sockets {
			s, err := e.addSocket(key)
			if err != nil {
				return nil, err
			}
			g.socks = append(g.socks, s)
		}
		e.groups[key] = g
	}
	s := g.socks[g.next]
	g.next = (g.next + 1) % len(g.socks)
	return s, nil
}

// addSocket opens a socket, registers it with the loop's epoll and publishes it. Caller holds
// e.mu.
func (e *Engine) addSocket(key groupKey) (*socket, error) {
	crypt, family := key.crypt, key.family
	sock, err := openSocket(family, e.cfg.SocketBuffer, key.local)
	if err != nil {
		return nil, err
	}
	fd := sock.FD
	old := *e.socks.Load()
	s := &socket{idx: len(old), fd: fd, family: family, local: sock.Local, crypt: crypt,
		kcpMTU: e.cfg.MTU - dgram.Overhead(crypt)}
	s.loopOut = newSendBatch(sock, e.cfg.Batch, crypt, &e.stats)
	s.out = newSendBatch(sock, e.cfg.Batch, crypt, &e.stats)
	// Level-triggered: the loop reads at most a few batches per wake-up and comes back for more.
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.idx + 1)}
	if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kcpnet: %w", os.NewSyscallError("epoll_ctl", err))
	}
	socks := append(old[:len(old):len(old)], s)
	e.socks.Store(&socks)
	return s, nil
}

// linkPeer and unlinkPeer keep each address's list of conversations. Caller holds e.mu.
func (e *Engine) linkPeer(c *Conn) {
	head := e.peers[c.addr]
	c.peerNext = head
	if head != nil {
		head.peerPrev = c
	}
	e.peers[c.addr] = c
}

func (e *Engine) unlinkPeer(c *Conn) {
	if c.peerPrev != nil {
		c.peerPrev.peerNext = c.peerNext
	} else if c.peerNext != nil {
		e.peers[c.addr] = c.peerNext
	} else {
		delete(e.peers, c.addr)
	}
	if c.peerNext != nil {
		c.peerNext.peerPrev = c.peerPrev
	}
	c.peerPrev, c.peerNext = nil, nil
}

// wake makes the loop return from epoll_wait (one eventfd write per wake-up).
func (e *Engine) wake() {
	if !e.woken.CompareAndSwap(false, true) {
		return
	}
	e.fdMu.RLock()
	defer e.fdMu.RUnlock()
	if e.evfd < 0 {
		return // the loop has exited
	}
	e.stats.wakeups.Add(1)
	one := [8]byte{1}
	if _, err := unix.Write(e.evfd, one[:]); err != nil && err != unix.EAGAIN {
		e.log.Error("waking the loop", "err", os.NewSyscallError("write eventfd", err))
	}
}

// postArm asks the loop to run c's timer at at, waking it only if it would sleep past at.
func (e *Engine) postArm(reqs []armReq) {
	e.qmu.Lock()
	e.armq = append(e.armq, reqs...)
	e.qn.Add(int32(len(reqs)))
	e.qmu.Unlock()
	earliest := reqs[0].at
	for _, r := range reqs[1:] {
		earliest = min(earliest, r.at)
	}
	if until := e.sleepUntil.Load(); until != 0 && until > earliest {
		e.wake()
	}
}

// postClose asks the loop to finish a conversation its owner closed.
func (e *Engine) postClose(c *Conn) {
	e.qmu.Lock()
	e.closeq = append(e.closeq, c)
	e.qn.Add(1)
	e.qmu.Unlock()
	e.wake()
}

// onLoop runs fn on the loop goroutine and waits for it (a barrier for tests). It returns false
// if the engine is closed.
func (e *Engine) onLoop(fn func()) bool {
	ran := make(chan struct{})
	e.qmu.Lock()
	e.funcs = append(e.funcs, func() { fn(); close(ran) })
	e.qn.Add(1)
	e.qmu.Unlock()
	e.wake()
	select {
	case <-ran:
		return true
	case <-e.done:
		return false
	}
}
