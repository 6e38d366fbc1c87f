package transport

import (
	"encoding/binary"

	"github.com/xtaci/kcp-go/v5"
)

// Address validation (RFC 9000 section 8.1, in KCP's terms). A UDP source address can be
// forged, so the server sends a conversation at most Amplification times the bytes it received
// from it (admit.go: allowOut) until the peer has shown that it receives what the server sends
// to that address: until it has acknowledged a segment the server sent. That holds for the
// conversation's whole life, a hello or a session notwithstanding: a forged hello that creates
// a session (no auth, or a stolen token) still gets at most three times its bytes, resends of
// the hello's reply included, and its conversation is closed PendingTTL after it began.
//
// An acknowledgment must be one a forger cannot make blind. KCP's sequence numbers start at 0,
// so an ACK of segment 0 proves nothing; but an ACK echoes the ts of the segment it
// acknowledges (every KCP does: kcp-go, the reference C KCP). So the server adds a random
// 32-bit offset, its own per conversation, to the ts of every push segment it sends (output),
// and takes it off the ts of every ACK it receives (input, before KCP sees it: KCP's RTT
// estimate and fast resends are unchanged). A peer validates its address with an ACK whose ts
// is one of the last maxSentTS the server sent it; guessing one takes about 2^32 / maxSentTS
// tries, and a peer gets maxBadACKs wrong guesses before its conversation is closed. A peer that echoes ts as it
// should never notices the offset.

const (
	maxSentTS  = 8 // ts values remembered per unvalidated conversation: the last ones sent
	maxBadACKs = 4 // ACKs of a ts never sent an unvalidated conversation may make; one more closes it
)

// stampOut adds c's offset to the ts of every push segment in data, an output datagram of c's
// KCP, and remembers the last ts values sent while the peer is not validated (a flush gives
// all its segments one ts).
func (c *Conn) stampOut(data []byte) {
	for len(data) >= kcp.IKCP_OVERHEAD {
		n := int(binary.LittleEndian.Uint32(data[20:24]))
		if data[4] == kcp.IKCP_CMD_PUSH {
			ts := binary.LittleEndian.Uint32(data[8:12])
			if !c.validated && (c.nSentTS == 0 || c.sentTS[(c.nSentTS-1)%maxSentTS] != ts) {
				c.sentTS[c.nSentTS%maxSentTS] = ts
				c.nSentTS++
			}
			binary.LittleEndian.PutUint32(data[8:12], ts+c.tsOff)
		}
		if n > len(data)-kcp.IKCP_OVERHEAD {
			return // KCP's own output is always whole; nothing more to stamp
		}
		data = data[kcp.IKCP_OVERHEAD+n:]
	}
}

// unstampIn takes c's offset off the ts of every ACK segment in data, a datagram received for
// c, and validates the peer's address if one of them acknowledges a segment the server sent.
// It reports false if the datagram holds an ACK of a ts never sent once too often while the
// peer is not validated: a forger guessing (the conversation is then to be closed).
func (c *Conn) unstampIn(data []byte) bool {
	for len(data) >= kcp.IKCP_OVERHEAD {
		n := int(binary.LittleEndian.Uint32(data[20:24]))
		if n > len(data)-kcp.IKCP_OVERHEAD {
			return true // malformed: KCP rejects it
		}
		if data[4] == kcp.IKCP_CMD_ACK {
			ts := binary.LittleEndian.Uint32(data[8:12]) - c.tsOff
			binary.LittleEndian.PutUint32(data[8:12], ts)
			if !c.validated && !c.acknowledges(ts) {
				if c.badACKs++; c.badACKs > maxBadACKs {
					return false
				}
			}
		}
		data = data[kcp.IKCP_OVERHEAD+n:]
	}
	return true
}

// acknowledges validates c if ts is one it sent, and reports whether it was.
func (c *Conn) acknowledges(ts uint32) bool {
	for _, sent := range c.sentTS[:min(c.nSentTS, maxSentTS)] {
		if ts == sent {
			c.validated = true
			c.srv.stats.validated.Add(1)
			return true
		}
	}
	return false
}

// Validated reports whether the peer has acknowledged something the server sent it: its
// address is its own, and the anti-amplification limit no longer applies.
func (c *Conn) Validated() bool { return c.validated }
