package kcpnet

import (
	"encoding/binary"

	"github.com/xtaci/kcp-go/v5"
)

// onlyACKs reports whether a KCP datagram holds nothing but ACK segments (at least one), and
// is well formed. The output callback holds such datagrams back (see Conn.output).
func onlyACKs(data []byte) bool {
	if len(data) < kcp.IKCP_OVERHEAD {
		return false
	}
	for len(data) > 0 {
		if len(data) < kcp.IKCP_OVERHEAD || data[4] != kcp.IKCP_CMD_ACK {
			return false
		}
		n := binary.LittleEndian.Uint32(data[20:])
		if uint64(n) > uint64(len(data)-kcp.IKCP_OVERHEAD) {
			return false
		}
		data = data[kcp.IKCP_OVERHEAD+int(n):]
	}
	return true
}
