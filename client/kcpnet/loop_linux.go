//go:build linux

package kcpnet

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// loopState is what only the loop goroutine touches.
type loopState struct {
	now      int64 // clock reading, once per wake-up
	rb       *dgram.RecvBatch
	wheel    *timer.Wheel
	events   []unix.EpollEvent
	pend     []pendingDatagram
	touched  []*Conn
	errBuf   []byte
	errOOB   []byte
	deadline int64 // the netpoller deadline set (MaxInt64: none)
	pollFn   func(fd uintptr) bool
	pollN    int
	pollErr  error
	// swapped with the request queues
	arms   []armReq
	closes []*Conn
}

type pendingDatagram struct {
	data []byte
	from netip.AddrPort
	conv uint32
	c    *Conn
}

func (l *loopState) init(batch int) {
	l.now = now()
	l.rb = dgram.NewRecvBatch(batch)
	l.wheel = timer.NewWheel(time.Millisecond, l.now)
	l.events = make([]unix.EpollEvent, 32)
	l.errBuf = make([]byte, dgram.MaxDatagram)
	l.errOOB = make([]byte, 512)
	l.deadline = math.MaxInt64
}

// maxRecvRounds bounds the recvmmsg batches per socket per wake-up (the socket is
// level-triggered: the loop comes back for the rest after its timers).
const maxRecvRounds = 4

// run is the loop: sleep until a socket is readable, the eventfd is written or the next timer
// is due; then read, run requests and timers, and send what they produced.
func (e *Engine) run() {
	if e.cfg.LockOSThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	defer close(e.done)
	l := &e.lp
	for !e.stopping.Load() {
		n, err := e.wait()
		e.sleepUntil.Store(0)
		l.now = now()
		e.stats.loopWakes.Add(1)
		if err != nil {
			e.log.Error("waiting for events failed: engine stops", "err", err)
			break
		}
		for _, ev := range l.events[:n] {
			e.handleEvent(ev)
		}
		e.runRequests()
		l.wheel.Advance(l.now)
		if e.handoff.Swap(false) {
			e.kick()
		}
		e.sendLoopBatches()
	}
	e.shutdown()
}

// wait returns the epoll events ready, sleeping until there are some or the next timer is due.
// By default the loop goroutine sleeps in Go's netpoller (the engine's epoll fd is itself
// registered there), so a wake-up costs no thread of its own: the goroutine that a reply wakes
// runs next on the same thread. With Config.BlockingWait it sleeps in epoll_wait instead,
// holding a thread, as the server's stage loops do.
func (e *Engine) wait() (int, error) {
	at, block := e.sleepPlan()
	if !block || e.poll == nil {
		timeout := 0
		if block {
			timeout = -1
			if at != math.MaxInt64 {
				timeout = int((at - now() + int64(time.Millisecond) - 1) / int64(time.Millisecond))
			}
		}
		return e.epollWait(e.epfd, max(timeout, -1))
	}
	if at != e.lp.deadline {
		e.lp.deadline = at
		var t time.Time // no deadline
		if at != math.MaxInt64 {
			t = epoch.Add(time.Duration(at))
		}
		if err := e.pollFile.SetReadDeadline(t); err != nil {
			return 0, err
		}
	}
	l := &e.lp
	if l.pollFn == nil { // made once: a closure per wait would be an allocation per wake-up
		l.pollFn = func(fd uintptr) bool {
			l.pollN, l.pollErr = e.epollWait(int(fd), 0)
			return l.pollN > 0 || l.pollErr != nil
		}
	}
	err := e.poll.Read(l.pollFn)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return l.pollN, l.pollErr
}

func (e *Engine) epollWait(epfd int, timeout int) (int, error) {
	for {
		e.stats.epollWaits.Add(1)
		n, err := unix.EpollWait(epfd, e.lp.events, timeout)
		if err != unix.EINTR {
			if err != nil {
				return 0, os.NewSyscallError("epoll_wait", err)
			}
			return n, nil
		}
	}
}

// sleepPlan publishes when the loop will wake by itself (the next timer, or never) and returns
// it, with whether the loop may sleep at all: not if timers are due or requests are waiting.
// Publishing first and checking after is what makes a sender's decision not to wake the loop
// safe (postArm).
func (e *Engine) sleepPlan() (at int64, block bool) {
	at = math.MaxInt64
	if next, ok := e.lp.wheel.NextDeadline(); ok {
		if next <= now() {
			return 0, false
		}
		at = next
	}
	e.sleepUntil.Store(at)
	if e.qn.Load() > 0 || e.handoff.Load() || e.stopping.Load() {
		e.sleepUntil.Store(0)
		return 0, false
	}
	return at, true
}

func (e *Engine) handleEvent(ev unix.EpollEvent) {
	if ev.Fd == 0 {
		var buf [8]byte
		unix.Read(e.evfd, buf[:])
		e.woken.Store(false)
		return
	}
	socks := *e.socks.Load()
	s := socks[ev.Fd-1]
	if ev.Events&unix.EPOLLERR != 0 {
		e.readErrors(s)
	}
	if ev.Events&unix.EPOLLIN != 0 {
		e.receive(s)
	}
}

// receive reads up to maxRecvRounds batches from s and feeds them to their conversations.
func (e *Engine) receive(s *socket) {
	l := &e.lp
	for range maxRecvRounds {
		n, err := l.rb.Recv(s.fd)
		if err != nil {
			// A pending socket error: an ICMP error, queued with IP_RECVERR. Read the queue
			// (it closes refused conversations), then go on reading datagrams.
			e.readErrors(s)
			continue
		}
		if n == 0 {
			return
		}
		e.stats.recvCalls.Add(1)
		e.inputBatch(s, n)
		if n < l.rb.Len() {
			return
		}
	}
}

// inputBatch decrypts the batch, finds each datagram's conversation (one lock for the batch),
// feeds KCP, and then, per conversation, delivers the frames completed and flushes.
func (e *Engine) inputBatch(s *socket, n int) {
	l := &e.lp
	for i := range n {
		data, from, ok := l.rb.Datagram(i)
		e.stats.datagramsIn.Add(1)
		e.stats.bytesIn.Add(uint64(len(data)))
		if ok {
			data, ok = dgram.Open(s.crypt, data)
		}
		if !ok || len(data) < kcp.IKCP_OVERHEAD {
			e.stats.malformed.Add(1)
			continue
		}
		l.pend = append(l.pend, pendingDatagram{data: data, from: from,
			conv: uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24})
	}
	e.mu.Lock()
	for i := range l.pend {
		p := &l.pend[i]
		if c := e.conns[p.conv]; c != nil && c.addr == p.from && c.sock == s {
			p.c = c
		}
	}
	e.mu.Unlock()
	for i := range l.pend {
		if p := &l.pend[i]; p.c != nil {
			e.input(p.c, p.data)
		} else {
			e.stats.unknown.Add(1)
		}
	}
	clear(l.pend)
	l.pend = l.pend[:0]
	for i, c := range l.touched {
		e.finishInput(c)
		l.touched[i] = nil
	}
	l.touched = l.touched[:0]
}

// input feeds one datagram to c's KCP and moves what it completes into c's frame splitter.
// ACK-only output is held (c.hold) until finishInput decides.
func (e *Engine) input(c *Conn, data []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.ensureKCP()
	c.active = e.lp.now
	c.sink, c.hold = c.sock.loopOut, e.ackDelay > 0
	if c.kcp.Input(data, kcp.IKCP_PACKET_REGULAR, false) < 0 {
		e.stats.malformed.Add(1)
	}
	c.hold = false
	got := false
	for {
		size := c.kcp.PeekSize()
		if size < 0 {
			break
		}
		n := c.kcp.Recv(c.in.Buffer(size)) // a 0-length segment is taken too, or it would block the stream
		if n < 0 {
			break
		}
		c.in.Commit(n)
		got = got || n > 0
	}
	c.sink = nil
	c.mu.Unlock()
	c.lastHeard.Store(e.lp.now)
	if got {
		c.lastData.Store(e.lp.now)
	}
	if !c.touched {
		c.touched = true
		e.lp.touched = append(e.lp.touched, c)
	}
}

// finishInput runs once per conversation per batch: it delivers the complete frames, then
// flushes c. At a frame boundary (the peer's message is complete: a reply) ACKs are held for a
// request to ride on; in mid-frame (a large reply still arriving) they leave now, so that the
// peer's window keeps moving.
func (e *Engine) finishInput(c *Conn) {
	c.touched = false
	e.deliver(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	boundary := c.in.Buffered() == 0
	c.sink, c.hold = c.sock.loopOut, boundary && e.ackDelay > 0
	next := dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
	c.hold = false
	if !boundary && c.held != nil {
		c.sendHeld()
	}
	c.sink = nil
	e.plan(c, next)
}

// deliver hands c's complete frames to its handler, unlocked (the handler may Send).
func (e *Engine) deliver(c *Conn) {
	for !c.isClosed.Load() {
		body, err := c.in.Next()
		if err != nil {
			e.kill(c, wrapBadStream(err), false)
			return
		}
		if body == nil {
			break
		}
		c.h.Frame(c, body)
	}
	c.in.Shrink(64 << 10)
}

// plan arms c's timer for what it waits for: a retransmission check while data is
// unacknowledged (KCP's next check, at most Interval away: never backed off while the
// conversation lives), and the held ACKs' deadline. With neither, c costs nothing until its
// next datagram or Send. Loop only, c.mu held.
func (e *Engine) plan(c *Conn, nextMs uint32) {
	at := int64(math.MaxInt64)
	if c.kcp.WaitSnd() > 0 {
		at = e.lp.now + int64(nextMs)*int64(time.Millisecond)
	}
	if c.held != nil {
		at = min(at, c.heldAt+e.ackDelay)
	}
	if at != math.MaxInt64 {
		c.armed = true
		e.armTimer(c, at)
		return
	}
	if e.compact > 0 {
		// Nothing to wait for: the timer, if any, is now only the idle check, which a sender
		// must not count on for its retransmissions (armed false: it asks for its own).
		c.armed = false
		if idle := c.active + e.compact; idle > e.lp.now {
			e.armTimer(c, idle)
		} else {
			c.compact()
		}
		return
	}
	if !c.timer.Scheduled() {
		c.armed = false // a timer still scheduled runs once more, finds nothing, and stops
	}
}

// armTimer makes sure c's timer runs by at. Loop only.
func (e *Engine) armTimer(c *Conn, at int64) {
	if !c.timer.Scheduled() || at < c.due {
		c.due = at
		e.lp.wheel.Schedule(&c.timer, at)
	}
}

// onTimer is c's timer: let KCP resend what is due, send the ACKs whose deadline passed, and
// plan the next check. Loop only.
func (c *Conn) onTimer() {
	e := c.e
	e.stats.timers.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.kcp == nil {
		return
	}
	c.sink = c.sock.loopOut
	next := dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
	if c.held != nil && e.lp.now >= c.heldAt+e.ackDelay {
		c.sendHeld()
	}
	c.sink = nil
	e.plan(c, next)
}

// runRequests takes the other goroutines' requests: timers to arm, conversations to finish,
// functions to run.
func (e *Engine) runRequests() {
	if e.qn.Load() == 0 {
		return
	}
	l := &e.lp
	e.qmu.Lock()
	arms, closes, funcs := e.armq, e.closeq, e.funcs
	e.armq, e.closeq, e.funcs = l.arms[:0], l.closes[:0], nil
	e.qn.Store(0)
	e.qmu.Unlock()
	for _, r := range arms {
		if !r.c.isClosed.Load() {
			e.armTimer(r.c, max(r.at, l.now))
		}
	}
	for _, c := range closes {
		e.finish(c, true)
	}
	for _, fn := range funcs {
		fn()
	}
	clear(arms)
	clear(closes)
	l.arms, l.closes = arms[:0], closes[:0]
}

// kill closes c for reason (from the loop: refused, bad stream, engine closed) and finishes it.
// A conversation its owner already closed is finished with its own reason.
func (e *Engine) kill(c *Conn, reason error, flush bool) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason = true, reason
	}
	c.mu.Unlock()
	c.isClosed.Store(true)
	e.finish(c, flush)
}

// finish removes a closed conversation from the engine, flushing what it has queued once (if
// flush), and calls Handler.Closed. Loop only; once per conversation.
func (e *Engine) finish(c *Conn, flush bool) {
	if c.finished {
		return
	}
	c.finished = true
	c.mu.Lock()
	if flush && c.kcp != nil {
		c.sink = c.sock.loopOut
		dgram.Flush(c.kcp, kcp.IKCP_FLUSH_FULL)
		if c.held != nil {
			c.sendHeld()
		}
		c.sink = nil
	} else if c.held != nil {
		c.releaseHeld()
	}
	if c.kcp == nil {
		e.stats.compacted.Add(-1)
	}
	c.kcp = nil // the conversation's memory goes even if its owner keeps the Conn
	reason := c.reason
	c.mu.Unlock()
	e.lp.wheel.Cancel(&c.timer)
	c.in = wire.Splitter{}
	e.mu.Lock()
	if e.conns[c.conv] == c {
		delete(e.conns, c.conv)
		e.unlinkPeer(c)
		e.stats.conns.Add(-1)
	}
	e.mu.Unlock()
	e.stats.closed.Add(1)
	c.h.Closed(c, reason)
}

// readErrors drains s's error queue. A port unreachable closes every conversation to its
// address at once; other ICMP errors (host unreachable, fragmentation needed...) are weather.
func (e *Engine) readErrors(s *socket) {
	l := &e.lp
	for range 256 {
		se, ok, err := dgram.ReadErrQueue(s.fd, l.errBuf, l.errOOB)
		if err != nil {
			e.log.Warn("reading the socket's error queue", "err", err)
			return
		}
		if !ok {
			return
		}
		if !se.Refused() {
			e.stats.icmpOther.Add(1)
			e.log.Debug("ICMP error", "err", se)
			continue
		}
		e.stats.refusals.Add(1)
		e.refuse(se.Dest)
	}
}

// refuse closes every conversation to addr: nothing listens there.
func (e *Engine) refuse(addr netip.AddrPort) {
	var victims []*Conn
	e.mu.Lock()
	for c := e.peers[addr]; c != nil; c = c.peerNext {
		victims = append(victims, c)
	}
	e.mu.Unlock()
	for _, c := range victims {
		e.kill(c, refusedError(addr), false)
	}
}

// sendLoopBatches sends what the loop produced this iteration.
func (e *Engine) sendLoopBatches() {
	for _, s := range *e.socks.Load() {
		if s.loopOut.pending() {
			s.loopOut.flush()
		}
	}
}

// shutdown ends every conversation and closes the sockets, the epoll instance and the eventfd.
func (e *Engine) shutdown() {
	e.runRequests()
	e.mu.Lock()
	e.closed = true
	all := make([]*Conn, 0, len(e.conns))
	for _, c := range e.conns {
		all = append(all, c)
	}
	e.mu.Unlock()
	for _, c := range all {
		e.kill(c, ErrEngineClosed, true)
	}
	e.sendLoopBatches()
	e.sendMu.Lock() // no sender is flushing, and none will find an open conversation
	for _, s := range *e.socks.Load() {
		s.closed = true
		unix.Close(s.fd)
	}
	e.sendMu.Unlock()
	e.fdMu.Lock()
	unix.Close(e.evfd)
	e.evfd = -1
	e.fdMu.Unlock()
	if e.pollFile != nil {
		e.pollFile.Close() // and with it epfd
	} else {
		unix.Close(e.epfd)
	}
}
