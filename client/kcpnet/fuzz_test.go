//go:build linux

package kcpnet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"
)

// ackSeg returns a KCP ACK segment.
func ackSeg(conv, sn uint32) []byte {
	b := make([]byte, kcp.IKCP_OVERHEAD)
	binary.LittleEndian.PutUint32(b, conv)
	b[4] = kcp.IKCP_CMD_ACK
	binary.LittleEndian.PutUint32(b[12:], sn)
	return b
}

func TestOnlyACKs(t *testing.T) {
	push := ackSeg(1, 2)
	push[4] = kcp.IKCP_CMD_PUSH
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"empty", nil, false},
		{"one ack", ackSeg(1, 2), true},
		{"two acks", append(ackSeg(1, 2), ackSeg(1, 3)...), true},
		{"ack then push", append(ackSeg(1, 2), push...), false},
		{"short tail", append(ackSeg(1, 2), 1, 2, 3), false},
		{"length past the end", func() []byte { b := ackSeg(1, 2); b[20] = 9; return b }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := onlyACKs(tc.data); got != tc.want {
				t.Errorf("onlyACKs = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzOnlyACKs(f *testing.F) {
	f.Add(ackSeg(1, 2))
	f.Add(append(ackSeg(1, 2), ackSeg(1, 3)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !onlyACKs(data) {
			return
		}
		for len(data) > 0 { // what onlyACKs accepts is a whole number of ACK segments
			if data[4] != kcp.IKCP_CMD_ACK {
				t.Fatalf("accepted a segment of cmd %d", data[4])
			}
			data = data[kcp.IKCP_OVERHEAD+int(binary.LittleEndian.Uint32(data[20:])):]
		}
	})
}

// errCmsg builds a control message as the kernel does for IP_RECVERR.
func errCmsg(errno uint32, origin uint8) []byte {
	data := make([]byte, sizeofSockExtendedErr+16)
	binary.NativeEndian.PutUint32(data, errno)
	data[4] = origin
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafePointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_RECVERR
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestParseExtendedErr(t *testing.T) {
	errno, origin := parseExtendedErr(errCmsg(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP))
	if errno != unix.ECONNREFUSED || origin != unix.SO_EE_ORIGIN_ICMP {
		t.Fatalf("got %v, %d", errno, origin)
	}
	if se := (sockErr{errno: errno, origin: origin}); !se.refused() {
		t.Error("a port unreachable is a refusal")
	}
	if se := (sockErr{errno: unix.EMSGSIZE, origin: 1}); se.refused() {
		t.Error("a local EMSGSIZE is not")
	}
	if errno, _ := parseExtendedErr([]byte{1, 2, 3}); errno != 0 {
		t.Errorf("garbage gave errno %v", errno)
	}
}

func FuzzParseExtendedErr(f *testing.F) {
	f.Add(errCmsg(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) { parseExtendedErr(oob) })
}

// FuzzSealOpen: what seal writes, open reads back; anything else open rejects or reads without
// failing.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("a KCP datagram of twenty-four bytes or more"), []byte{})
	f.Fuzz(func(t *testing.T, a, junk []byte) {
		block, _ := kcp.NewAESBlockCrypt(testKey())
		s := newSealer(block)
		buf := make([]byte, cryptHeaderSize+len(a))
		n := s.seal(buf, a[:len(a)/2], a[len(a)/2:])
		got, ok := open(block, buf[:n])
		if len(a) >= kcp.IKCP_OVERHEAD && (!ok || !bytes.Equal(got, a)) {
			t.Fatalf("round trip of %d bytes: ok %v", len(a), ok)
		}
		open(block, junk)
	})
}

// FuzzDatagram feeds arbitrary datagrams to a conversation, as if its peer sent them: nothing
// panics, and the engine goes on (a stream it cannot read closes that conversation only).
func FuzzDatagram(f *testing.F) {
	f.Add(ackSeg(1, 0))
	seg := ackSeg(1, 0)
	seg[4] = kcp.IKCP_CMD_PUSH
	f.Add(append(seg[:20:20], 0, 0, 0, 0))
	f.Add(append(append(seg[:20:20], 8, 0, 0, 0), 0, 0, 0, 4, 0, 2, '{', '}'))
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

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
