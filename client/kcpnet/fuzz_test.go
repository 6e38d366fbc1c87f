//go:build linux

package kcpnet

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/xtaci/kcp-go/v5"
)

// FuzzDatagram feeds arbitrary datagrams to a conversation, as if its peer sent them: nothing
// panics, and the engine goes on (a stream it cannot read closes that conversation only).
func FuzzDatagram(f *testing.F) {
	ack := make([]byte, kcp.IKCP_OVERHEAD) // conv (set below), cmd, frg, wnd, ts, sn, una, len
	ack[4] = kcp.IKCP_CMD_ACK
	f.Add(ack)
	push := slices.Clone(ack)
	push[4] = kcp.IKCP_CMD_PUSH
	f.Add(push)
	f.Add(append(append(push[:20:20], 8, 0, 0, 0), 0, 0, 0, 4, 0, 2, '{', '}'))
	e := newTestEngine(f, Config{})
	peer := netip.MustParseAddrPort("127.0.0.1:9") // discard: nothing is expected back
	var c *Conn
	f.Fuzz(func(t *testing.T, data []byte) {
		if c == nil || c.isClosed.Load() {
			var err error
			if c, err = e.DialAddrPort(peer, DialOptions{Handler: newRPC()}); err != nil {
				t.Fatal(err)
			}
		}
		if len(data) >= 4 {
			binary.LittleEndian.PutUint32(data, c.conv)
		}
		if !e.onLoop(func() {
			if len(data) >= kcp.IKCP_OVERHEAD {
				e.input(c, data)
			}
			if c.touched {
				e.lp.touched = e.lp.touched[:0]
				e.finishInput(c)
			}
		}) {
			t.Fatal("the engine stopped")
		}
	})
}
