//go:build linux

package kcpnet

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/wire"
)

// Conn is one KCP conversation of an Engine. Send and Close are safe for concurrent use.
type Conn struct {
	e    *Engine
	sock *socket
	addr netip.AddrPort
	conv uint32
	h    Handler
	ctx  any

	peerPrev, peerNext *Conn // the address's list of conversations, guarded by e.mu

	mu     sync.Mutex // guards the fields below, and every call into kcp
	kcp    *kcp.KCP   // nil once finished
	mss    int        // payload bytes per segment
	sink   *sendBatch // where output goes during the current call into kcp
	hold   bool       // during the current call into kcp, ACK-only output is held (loop only)
	held   *heldBuf   // ACK segments waiting to ride on the next datagram; nil if none
	heldAt int64      // when the oldest of them was held
	queued bool       // on the engine's dirty list
	armed  bool       // the loop has a timer scheduled for it, or a request to schedule one
	closed bool
	reason error // why it closed

	// The loop goroutine's own.
	in       wire.Splitter
	timer    timer.Timer
	due      int64 // when timer is due, while it is scheduled
	touched  bool  // in the loop's list of conversations that received this batch
	finished bool  // removed from the engine, Handler.Closed called

	isClosed  atomic.Bool  // closed, readable without mu
	lastHeard atomic.Int64 // clock reading of the last datagram from the peer; 0: never
}

// heldBuf holds ACK segments back (see Conn.output); pooled, since few conversations hold any
// at a time.
type heldBuf struct {
	n int
	b [maxDatagram]byte
}

var heldPool = sync.Pool{New: func() any { return new(heldBuf) }}

func newConn(e *Engine, s *socket, to netip.AddrPort, conv uint32, o *DialOptions) *Conn {
	c := &Conn{e: e, sock: s, addr: to, conv: conv, h: o.Handler, ctx: o.Ctx}
	wnd := e.cfg.Window
	if o.Window > 0 {
		wnd = o.Window
	}
	c.kcp = kcp.NewKCP(conv, c.output)
	c.kcp.NoDelay(1, int(e.cfg.Interval/time.Millisecond), 2, 1)
	c.kcp.WndSize(wnd, wnd)
	if s.kcpMTU != kcp.IKCP_MTU_DEF {
		c.kcp.SetMtu(s.kcpMTU)
	}
	c.mss = s.kcpMTU - kcp.IKCP_OVERHEAD
	c.timer.Fn = c.onTimer
	return c
}

// Conv returns the KCP conversation id.
func (c *Conn) Conv() uint32 { return c.conv }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.addr }

// LocalAddr returns the address of the engine socket the conversation uses (shared with others).
func (c *Conn) LocalAddr() netip.AddrPort { return c.sock.local }

// Ctx returns DialOptions.Ctx.
func (c *Conn) Ctx() any { return c.ctx }

// LastHeard returns when the last datagram from the peer arrived (the zero time if none has).
func (c *Conn) LastHeard() time.Time {
	n := c.lastHeard.Load()
	if n == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(n))
}

// Err returns why the conversation closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// WaitSnd returns how many segments are queued or unacknowledged (0 once closed).
func (c *Conn) WaitSnd() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	return c.kcp.WaitSnd()
}

// Send queues frame (a whole frame: frames of concurrent callers never interleave) and sends
// it: at once from this goroutine, or, if another goroutine is sending, along with what that one
// sends. frame is copied; the caller may reuse it when Send returns. It is cut into segments of
// at most one MSS with frg 0, so any KCP peer reads it as a byte stream. Send fails if the
// conversation is closed (an error wrapping ErrClosed and the reason) or has more than
// Config.MaxSendQueue segments waiting (ErrSendQueueFull); then nothing was queued.
func (c *Conn) Send(frame []byte) error {
	if len(frame) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		err := closedError(c.reason)
		c.mu.Unlock()
		return err
	}
	if c.kcp.WaitSnd() > c.e.cfg.MaxSendQueue {
		c.mu.Unlock()
		return ErrSendQueueFull
	}
	for len(frame) > 0 {
		n := min(len(frame), c.mss)
		c.kcp.Send(frame[:n])
		frame = frame[n:]
	}
	push := !c.queued
	c.queued = true
	c.mu.Unlock()
	if push {
		c.e.markDirty(c)
	}
	c.e.kick()
	return nil
}

// Close ends the conversation: what is queued is flushed once, Handler.Closed runs on the loop
// with ErrClosed, and later datagrams for it are dropped. It does not wait. Safe to call more
// than once, and from a Handler.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed, c.reason = true, ErrClosed
	c.mu.Unlock()
	c.isClosed.Store(true)
	c.e.postClose(c)
	return nil
}

// output is KCP's output callback. It runs inside Input and flush, with c.mu held, and its
// buffer is reused after it returns, so the datagram is copied into c.sink at once.
//
// While c.hold is set (on the loop, receiving), a datagram of ACKs only is held back instead of
// sent: held ACKs leave in front of the conversation's next datagram if they fit, or on their
// own at the ACK deadline (the loop's timer), whichever comes first. This is what saves the
// third datagram of a round trip: kcp-go flushes inside Input as soon as a reply's una moves the
// send window, and without holding, the reply's ACK would leave alone, just before the next
// request.
func (c *Conn) output(buf []byte, size int) {
	data := buf[:size]
	if c.hold && onlyACKs(data) {
		c.holdACKs(data)
		return
	}
	if h := c.held; h != nil {
		if h.n+size <= c.sock.kcpMTU {
			c.sink.queue(c.addr, h.b[:h.n], data)
			c.e.stats.acksPiggy.Add(1)
			c.releaseHeld()
			return
		}
		c.sendHeld()
	}
	c.sink.queue(c.addr, data, nil)
}

// holdACKs appends ACK segments to the held ones (sending those first if both would not fit in
// one datagram), and makes sure the loop's timer runs by the ACK deadline. Loop only.
func (c *Conn) holdACKs(data []byte) {
	if c.held != nil && c.held.n+len(data) > c.sock.kcpMTU {
		c.sendHeld()
	}
	if c.held == nil {
		c.held = heldPool.Get().(*heldBuf)
		c.held.n = 0
		c.heldAt = c.e.lp.now
		c.e.stats.acksHeld.Add(1)
		c.armed = true
		c.e.armTimer(c, c.heldAt+c.e.ackDelay)
	}
	c.held.n += copy(c.held.b[c.held.n:], data)
}

// sendHeld sends the held ACKs on their own.
func (c *Conn) sendHeld() {
	c.sink.queue(c.addr, c.held.b[:c.held.n], nil)
	c.e.stats.acksAlone.Add(1)
	c.releaseHeld()
}

func (c *Conn) releaseHeld() {
	heldPool.Put(c.held)
	c.held = nil
}

// flushOut flushes c into its socket's sender batch (send.go). It reports whether the loop must
// be asked to arm c's timer, and for when. Caller holds e.sendMu.
func (c *Conn) flushOut(t int64) (armReq, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued = false
	if c.closed {
		return armReq{}, false
	}
	c.sink = c.sock.out
	next := kcpFlush(c.kcp, kcp.IKCP_FLUSH_FULL)
	c.sink = nil
	if c.armed || (c.kcp.WaitSnd() == 0 && c.held == nil) {
		return armReq{}, false
	}
	c.armed = true
	return armReq{c: c, at: t + int64(next)*int64(time.Millisecond)}, true
}
