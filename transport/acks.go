package transport

import "github.com/pipecache/pipecache/transport/dgram"

// ACKs that wait for the reply. A client's request arrives in a datagram whose segments also
// acknowledge the server's last reply, so kcp-go's Input flushes at once and would send the ACK
// of the request in a datagram of its own, then the reply in another: three datagrams per round
// trip. Instead, a datagram of nothing but ACKs (from Input, or from the end-of-iteration
// flush) is held, and rides in front of the next
// datagram the conversation sends (the reply, whether it is ready in the same loop iteration or
// comes back from CachePrc later), or leaves alone after AckDelay (well under KCP's minimum
// retransmission timeout, 30 ms in fast mode), so a slow reply costs the client no resend. Two
// datagrams per round trip at one request in flight.

// holdAck keeps data if it is ACK-only output of Input and AckDelay allows; it reports whether
// it did.
func (c *Conn) holdAck(data []byte) bool {
	s := c.srv
	if s.holding != c || s.cfg.AckDelay < 0 || !dgram.OnlyACKs(data) || len(c.heldAck)+len(data) > s.kcpMTU {
		return false
	}
	c.heldAck = append(c.heldAck, data...)
	if !c.ackTimer.Scheduled() {
		s.loop.Wheel().Schedule(&c.ackTimer, s.loop.Clock().Nanos()+int64(s.cfg.AckDelay))
	}
	return true
}

// withHeldAck returns data with the held ACKs in front of it if they fit in one datagram (KCP
// segments may follow each other in a datagram in any order), and otherwise sends the ACKs
// first, alone.
func (c *Conn) withHeldAck(data []byte) []byte {
	if len(c.heldAck) == 0 {
		return data
	}
	c.srv.loop.Wheel().Cancel(&c.ackTimer)
	if len(c.heldAck)+len(data) > c.srv.kcpMTU {
		c.sendHeldAck()
		return data
	}
	out := append(c.heldAck, data...)
	c.heldAck = c.heldAck[:0] // out aliases heldAck: the send batch copies it at once
	return out
}

// sendHeldAck sends the held ACKs now, alone.
func (c *Conn) sendHeldAck() {
	if len(c.heldAck) == 0 {
		return
	}
	c.srv.loop.Wheel().Cancel(&c.ackTimer)
	ack := c.heldAck
	c.heldAck = c.heldAck[:0]
	c.emit(ack)
	c.srv.loop.Ready().Add(&c.srv.flushAll)
}

// onAckTimer sends the held ACKs after AckDelay: no reply came to carry them. The
// conversation may be idle now (idle.go).
func (c *Conn) onAckTimer() {
	c.sendHeldAck()
	c.compact()
}
