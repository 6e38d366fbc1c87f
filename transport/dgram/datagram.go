package dgram

import (
	"encoding/binary"

	"github.com/xtaci/kcp-go/v5"
)

// MaxDatagram is the largest datagram a RecvBatch takes whole (a larger one is truncated, and
// dropped) and a SendBatch queues: larger than any MTU pipecache uses.
const MaxDatagram = 2048

// OnlyACKs reports whether a KCP datagram holds nothing but ACK segments (at least one), and
// is well formed. Both sides hold such a datagram back, to ride in front of the next one the
// conversation sends (transport's acks.go, client/kcpnet's Conn.output): without that, kcp-go,
// which flushes inside Input as soon as an ACK moves its send window, would spend a datagram
// of its own on it.
func OnlyACKs(data []byte) bool {
	if len(data) < kcp.IKCP_OVERHEAD {
		return false
	}
	for len(data) > 0 {
		if len(data) < kcp.IKCP_OVERHEAD || data[4] != kcp.IKCP_CMD_ACK {
			return false
		}
		n := binary.LittleEndian.Uint32(data[20:24])
		if uint64(n) > uint64(len(data)-kcp.IKCP_OVERHEAD) {
			return false
		}
		data = data[kcp.IKCP_OVERHEAD+int(n):]
	}
	return true
}
