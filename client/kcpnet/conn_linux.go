//go:build linux

package kcpnet

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/dgram"
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

	mu     sync.Mutex  // guards the fields below, and every call into kcp
	kcp    *kcp.KCP    // nil once finished, or while compacted
	saved  dgram.State // while compacted, what the next kcp continues from
	active int64       // clock reading of the last datagram in or out
	wnd    int         // KCP window, in segments
	mss    int         // payload bytes per segment
	sink   *sendBatch  // where output goes during the current call into kcp
	hold   bool        // during the current call into kcp, ACK-only output is held (loop only)
	held   *heldBuf    // ACK segments waiting to ride on the next datagram; nil if none
	heldAt int64       // when the oldest of them was held
	queued bool        // on the engine's dirty list
	armed  bool        // the loop has a timer scheduled for it, or a request to schedule one
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
	lastData  atomic.Int64 // ... of the last one that brought stream bytes (not ACKs alone); 0: never
}

// heldBuf holds ACK segments back (see Conn.output); pooled, since few conversations hold any
// at a time. Most hold one 24-byte ACK; a buffer grows (to the MTU at most) when more come.
type heldBuf struct{ b []byte }

var heldPool = sync.Pool{New: func() any { return &heldBuf{b: make([]byte, 0, 64)} }}

func newConn(e *Engine, s *socket, to netip.AddrPort, conv uint32, o *DialOptions) *Conn {
	c := &Conn{e: e, sock: s, addr: to, conv: conv, h: o.Handler, ctx: o.Ctx, wnd: e.cfg.Window}
	if o.Window > 0 {
		c.wnd = o.Window
	}
	c.kcp = c.newKCP()
	c.mss = s.kcpMTU - kcp.IKCP_OVERHEAD
	c.timer.Fn = c.onTimer
	return c
}

func (c *Conn) newKCP() *kcp.KCP {
	k := kcp.NewKCP(c.conv, c.output)
	k.NoDelay(1, int(c.e.cfg.Interval/time.Millisecond), 2, 1)
	k.WndSize(c.wnd, c.wnd)
	if c.sock.kcpMTU != kcp.IKCP_MTU_DEF {
		k.SetMtu(c.sock.kcpMTU)
	}
	return k
}

// ensureKCP rebuilds a compacted conversation's KCP. Caller holds c.mu; c is open.
func (c *Conn) ensureKCP() {
	if c.kcp == nil {
		c.kcp = c.newKCP()
		dgram.Restore(c.kcp, c.conv, c.output, c.saved)
		c.e.stats.rebuilds.Add(1)
		c.e.stats.compacted.Add(-1)
	}
}

// compact releases an idle conversation's KCP and frame buffer (Config.CompactAfter); it does
// nothing if the conversation is not idle after all. Loop only, c.mu held.
func (c *Conn) compact() {
	if c.kcp == nil || c.held != nil || c.in.Buffered() != 0 {
		return
	}
	s, ok := dgram.Save(c.kcp)
	if !ok {
		return
	}
	c.saved, c.kcp, c.in = s, nil, wire.Splitter{}
	c.e.stats.compactions.Add(1)
	c.e.stats.compacted.Add(1)
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

// LastData returns when the last datagram that brought stream data from the peer arrived (part
// of a frame or more; not a datagram of ACKs alone), or the zero time if none has: what a
// kcp-go UDPSession's Read returning tells its caller. A peer whose transport still ACKs while
// it sends nothing looks silent here, and heard in LastHeard.
func (c *Conn) LastData() time.Time {
	n := c.lastData.Load()
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
	if c.closed || c.kcp == nil {
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
	if err := c.Queue(frame); err != nil {
		return err
	}
	c.e.kick()
	return nil
}

// Queue is Send without the sending: the frame waits until Engine.Flush, or until a Send of
// any conversation of the engine flushes it along. A caller sending to many conversations at
// once (a load tool's heartbeats) queues them all and flushes once, so that they leave in one
// sendmmsg per socket instead of one each. It fails as Send does.
func (c *Conn) Queue(frame []byte) error {
	if len(frame) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		err := closedError(c.reason)
		c.mu.Unlock()
		return err
	}
	c.ensureKCP()
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
	if c.hold && dgram.OnlyACKs(data) {
		c.holdACKs(data)
		return
	}
	if h := c.held; h != nil {
		if len(h.b)+size <= c.sock.kcpMTU {
			c.sink.queue(c.addr, h.b, data)
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
	if c.held != nil && len(c.held.b)+len(data) > c.sock.kcpMTU {
		c.sendHeld()
	}
	if c.held == nil {
		c.held = heldPool.Get().(*heldBuf)
		c.held.b = c.held.b[:0]
		c.heldAt = c.e.lp.now
		c.e.stats.acksHeld.Add(1)
		c.armed = true
		c.e.armTimer(c, c.heldAt+c.e.ackDelay)
	}
	c.held.b = append(c.held.b, data...)
}

// sendHeld sends the held ACKs on their own.
func (c *Conn) sendHeld() {
	c.sink.queue(c.addr, c.held.b, nil)
	c.e.stats.acksAlone.Add(1)
	c.releaseHeld()
}

func (c *Conn) releaseHeld() {
	if cap(c.held.b) <= 256 { // a large one (many ACKs, rare) goes to the garbage collector
		heldPool.Put(c.held)
	}
	c.held = nil
}

// flushOut flushes c into its socket's sender batch (send.go). It reports whether the loop must
// be asked to arm c's timer, and for when. Caller holds e.sendMu.
func (c *Conn) flushOut(t int64) (armReq, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued = false
	if c.closed || c.kcp == nil {
		return armReq{}, false
	}
	c.active = t
	c.sink = c.sock.out
	next := dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
	c.sink = nil
	if c.armed || (c.kcp.WaitSnd() == 0 && c.held == nil) {
		return armReq{}, false
	}
	c.armed = true
	return armReq{c: c, at: t + int64(next)*int64(time.Millisecond)}, true
}
