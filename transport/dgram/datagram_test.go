package dgram

import (
	"encoding/binary"
	"testing"

	"github.com/xtaci/kcp-go/v5"
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
		{"push", push, false},
		{"short tail", append(ackSeg(1, 2), 1, 2, 3), false},
		{"length past the end", func() []byte { b := ackSeg(1, 2); b[20] = 9; return b }(), false},
		{"length past the end, high bit", func() []byte { b := ackSeg(1, 2); b[23] = 0x80; return b }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OnlyACKs(tc.data); got != tc.want {
				t.Errorf("OnlyACKs = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOnlyACKsSeesWhatKCPSends: the ACKs kcp-go sends alone are recognised, and its data
// segments are not.
func TestOnlyACKsSeesWhatKCPSends(t *testing.T) {
	var out [][]byte
	a := kcp.NewKCP(3, func(buf []byte, n int) { out = append(out, append([]byte(nil), buf[:n]...)) })
	a.NoDelay(1, 10, 2, 1)
	var acks [][]byte
	b := kcp.NewKCP(3, func(buf []byte, n int) { acks = append(acks, append([]byte(nil), buf[:n]...)) })
	b.NoDelay(1, 10, 2, 1)
	a.Send([]byte("request"))
	Flush(a, kcp.IKCP_FLUSH_FULL)
	if len(out) != 1 || OnlyACKs(out[0]) {
		t.Fatalf("a data segment taken for ACKs: %d datagrams", len(out))
	}
	b.Input(out[0], kcp.IKCP_PACKET_REGULAR, false)
	Flush(b, kcp.IKCP_FLUSH_FULL)
	if len(acks) != 1 || !OnlyACKs(acks[0]) {
		t.Fatalf("kcp-go's ACK not recognised: %d datagrams", len(acks))
	}
}

func FuzzOnlyACKs(f *testing.F) {
	f.Add(ackSeg(1, 2))
	f.Add(append(ackSeg(1, 2), ackSeg(1, 3)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !OnlyACKs(data) {
			return
		}
		for len(data) > 0 { // what OnlyACKs accepts is a whole number of ACK segments
			if data[4] != kcp.IKCP_CMD_ACK {
				t.Fatalf("accepted a segment of cmd %d", data[4])
			}
			data = data[kcp.IKCP_OVERHEAD+int(binary.LittleEndian.Uint32(data[20:])):]
		}
	})
}
