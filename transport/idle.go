package transport

import (
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
)

// Idle compaction (issue #16). Most conversations of a game or social server are idle most of
// the time: a heartbeat every few seconds, a push now and then. Their KCP is still about 20 KB
// (three rings of segments and a flush buffer), and the frame splitter's and held ACKs' buffers
// a few KB more, whatever the traffic. So an established conversation with nothing in flight,
// nothing to read, nothing half-received and no ACK waiting gives its engine (KCP and buffers)
// back to the server's spares, and keeps only dgram.State: six words. When it has something
// to do again (a datagram arrives, a reply or push is sent) it takes a spare engine and
// restores its state into it: 17 ns, no allocation (BenchmarkSaveRestore).
//
// Compaction happens where a conversation may have just fallen idle: after the end-of-iteration
// flush, after held ACKs leave alone, after a retransmission check. So a client between
// requests costs a Save and a Restore per burst, and active conversations keep their engine.
// Pending conversations are never compacted (they have their own window, and live 5 s at most).
//
// Everything here runs on the server's loop goroutine.

// maxSpares bounds the engines kept for reuse (about 21 KB each: 5 MiB at most), enough for
// the conversations that fall idle between two that wake up in a burst. Beyond, engines are
// left to the garbage collector, and a wake-up with no spare allocates a new one.
const maxSpares = 256

// engine is what only a conversation with something to do needs.
type engine struct {
	kcp *kcp.KCP
	in  []byte // the splitter's buffer
	ack []byte // the held ACKs' buffer
}

// compact gives c's engine back if c is established and idle; it reports whether c is compact.
func (c *Conn) compact() bool {
	s := c.srv
	if c.kcp == nil {
		return true
	}
	if !c.established || c.closed || s.cfg.NoCompaction || len(c.heldAck) > 0 || c.in.Buffered() > 0 {
		return false
	}
	st, ok := dgram.Save(c.kcp)
	if !ok {
		return false
	}
	in := c.in.Detach()
	if in == nil {
		return false
	}
	c.saved = st
	if len(s.spares) < maxSpares {
		s.spares = append(s.spares, engine{kcp: c.kcp, in: in, ack: c.heldAck[:0]})
	}
	c.kcp, c.heldAck = nil, nil
	s.loop.Wheel().Cancel(&c.retransmit) // nothing left to resend
	s.stats.idle.Add(1)
	s.stats.compactions.Add(1)
	return true
}

// engine returns c's KCP, restoring c into a spare engine (or a new one) if it is compact.
func (c *Conn) engine() *kcp.KCP {
	if c.kcp != nil {
		return c.kcp
	}
	s := c.srv
	var e engine
	if n := len(s.spares); n > 0 {
		e = s.spares[n-1]
		s.spares[n-1] = engine{}
		s.spares = s.spares[:n-1]
	} else {
		e.kcp = s.newKCP(c.key.conv, c.out, s.cfg.Window)
	}
	dgram.Restore(e.kcp, c.key.conv, c.out, c.saved)
	c.kcp, c.heldAck = e.kcp, e.ack
	c.in.Attach(e.in)
	s.stats.idle.Add(-1)
	return c.kcp
}

// newKCP returns a KCP configured for the server: fast mode, its MTU, and a receive window of
// rcvWnd segments.
func (s *Server) newKCP(conv uint32, out func([]byte, int), rcvWnd int) *kcp.KCP {
	k := kcp.NewKCP(conv, out)
	k.NoDelay(1, int(s.cfg.Interval/time.Millisecond), 2, 1)
	k.WndSize(s.cfg.Window, rcvWnd)
	k.SetMtu(s.kcpMTU)
	return k
}

// rto returns c's current retransmission timeout in milliseconds, compact or not.
func (c *Conn) rto() uint32 {
	if c.kcp == nil {
		return c.saved.RTO
	}
	return dgram.RTO(c.kcp)
}
