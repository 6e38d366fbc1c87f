package tests

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// Conformance: PROTOCOL.md's rules for strangers (pending conversations, anti-amplification,
// resets), checked by a client written from its text alone, in raw datagrams: KCP segments
// and frames built here by hand (no kcp-go, no transport/wire, no SDK), every byte counted.
// #23: so that the document and the server cannot drift apart again.

// Constants as PROTOCOL.md states them.
const (
	specOverhead  = 24 // the KCP segment header
	specPush      = 81 // KCP's cmd for data
	specAck       = 82
	specMinHello  = 200 // "the hello frame must be at least 200 bytes long (length prefix included)"
	specAmplify   = 3   // "at most 3 times the bytes it received from it"
	specResetWnd  = 8   // "frg 0, wnd 8"
	specCodeUnath = 8
)

// specSegment is one KCP segment: "All integers in the KCP header are little-endian".
func specSegment(conv uint32, cmd byte, sn, una uint32, data []byte) []byte {
	b := make([]byte, specOverhead, specOverhead+len(data))
	binary.LittleEndian.PutUint32(b[0:], conv)
	b[4] = cmd
	binary.LittleEndian.PutUint16(b[6:], 256) // wnd
	binary.LittleEndian.PutUint32(b[12:], sn)
	binary.LittleEndian.PutUint32(b[16:], una)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(data)))
	return append(b, data...)
}

// specFrame is one frame: length (uint32 BE, every byte after itself), hlen (uint16 BE), the
// JSON header, the value.
func specFrame(header string, value []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(header)+len(value)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(header)))
	return append(append(b, header...), value...)
}

// specHello is a hello frame of exactly size bytes, padded with the "pad" field.
func specHello(id int, fields map[string]any, size int) []byte {
	header := `{"v":1,"op":"hello","id":` + itoa(id) + `}`
	fields["pad"] = ""
	base, _ := json.Marshal(fields)
	fields["pad"] = strings.Repeat(".", max(0, size-len(specFrame(header, base))))
	value, _ := json.Marshal(fields)
	return specFrame(header, value)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// specPeer is a UDP socket that counts what it sends and receives.
type specPeer struct {
	tb        testing.TB
	conn      *net.UDPConn
	gcm       cipher.AEAD // if set, what it sends is sealed as "Encryption" says
	sent, got int
	datagrams [][]byte
}

func newSpecPeer(tb testing.TB, d *pipecached.Daemon) *specPeer {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(d.Addr()))
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return &specPeer{tb: tb, conn: c}
}

func (p *specPeer) send(b []byte) {
	if p.gcm != nil { // nonce (12 bytes), then AES-GCM's output for it, with no additional data
		nonce := make([]byte, 12)
		rand.Read(nonce)
		b = p.gcm.Seal(nonce, nonce, b, nil)
	}
	_, err := p.conn.Write(b)
	require.NoError(p.tb, err)
	p.sent += len(b)
}

// drain reads every datagram that arrives until quiet passes with none; it returns them.
func (p *specPeer) drain(quiet time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	for {
		p.conn.SetReadDeadline(time.Now().Add(quiet))
		n, err := p.conn.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		require.NoError(p.tb, err)
		p.got += n
		out = append(out, append([]byte(nil), buf[:n]...))
		p.datagrams = append(p.datagrams, out[len(out)-1])
	}
}

// TestConformanceHelloNeverAcknowledgedGetsAtMost3x (#23 items 1, 10): "until the client has
// acknowledged a segment the server sent it ..., the server sends the conversation at most 3
// times the bytes it received from it, over the conversation's whole life". One padded hello
// (with a heartbeat of a minute, which made a 40x amplifier of the server), never acknowledged,
// as a spoofed source would send it; every byte that comes back is counted until the server
// has closed the conversation ("a conversation whose client has not acknowledged anything by
// then [5 s] is closed too, even after a successful hello"), with and without authentication,
// and encrypted ("the anti-amplification limit counts the encrypted sizes").
func TestConformanceHelloNeverAcknowledgedGetsAtMost3x(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   pipecached.Config
		token string
	}{
		{"no auth", pipecached.Config{}, ""},
		{"auth", pipecached.Config{Sessions: stages.SessionConfig{Tokens: []string{"s3cret"}}}, "s3cret"},
		{"encrypted", pipecached.Config{CryptKey: specKey}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testdaemon.Start(t, tc.cfg)
			p := newSpecPeer(t, d)
			if tc.cfg.CryptKey != nil {
				block, err := aes.NewCipher(specKey)
				require.NoError(t, err)
				p.gcm, err = cipher.NewGCM(block)
				require.NoError(t, err)
			}
			hello := specHello(1, map[string]any{"token": tc.token, "heartbeat_ms": 60000}, 300)
			p.send(specSegment(0x5eed, specPush, 0, 0, hello))
			pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Opened == 1 }, "the hello opened no conversation")
			pctest.WaitFor(t, func() bool {
				p.drain(10 * time.Millisecond)
				in, _ := d.Stats()
				return in.Transport.Closed == 1
			}, "the conversation that never acknowledged anything was not closed")
			p.drain(200 * time.Millisecond) // what was on its way
			in, _ := d.Stats()
			t.Logf("sent %d bytes, got %d in %d datagrams; transport %+v", p.sent, p.got, len(p.datagrams), in.Transport)
			require.NotEmpty(t, p.datagrams, "the hello was not answered at all")
			assert.LessOrEqual(t, p.got, specAmplify*p.sent, "more than 3x the bytes sent")
		})
	}
}

// TestConformanceResets (#23 items 5, 9): "a datagram holding a KCP push for a conversation
// the server does not know ... that cannot start one ... is answered with one KCP push segment
// whose sn is the una of the client's segment, frg 0, wnd 8, carrying that goodbye frame" (id
// 0, code 8, no msg), "never larger than the datagram that caused it" (so a datagram shorter
// than the reset gets none), and "datagrams of ACKs alone get none".
func TestConformanceResets(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	p := newSpecPeer(t, d)
	resets := func() uint64 { in, _ := d.Stats(); return in.Transport.Resets }

	p.send(specSegment(77, specAck, 3, 0, nil))                   // an ACK alone
	p.send(specSegment(77, specPush, 9, 2, specFrame(`{}`, nil))) // a push, 30 bytes: shorter than a reset
	ping := specFrame(`{"v":1,"op":"ping","id":12345678}`, nil)   // 24 + 40 bytes
	p.send(specSegment(77, specPush, 17, 5, ping))                // sn 17, una 5: the reset's sn is 5
	pctest.WaitFor(t, func() bool { return resets() >= 1 }, "no reset")
	got := p.drain(200 * time.Millisecond)
	require.Len(t, got, 1, "one reset, for the one datagram large enough")
	assert.Equal(t, uint64(1), resets())
	r := got[0]
	assert.LessOrEqual(t, len(r), specOverhead+len(ping), "a reset larger than what caused it")
	assert.Equal(t, specResetSize, len(r), "PROTOCOL.md's reset size")
	assert.Equal(t, uint32(77), binary.LittleEndian.Uint32(r[0:]), "conv")
	assert.Equal(t, byte(specPush), r[4], "cmd")
	assert.Zero(t, r[5], "frg")
	assert.Equal(t, uint16(specResetWnd), binary.LittleEndian.Uint16(r[6:]), "wnd")
	assert.Equal(t, uint32(5), binary.LittleEndian.Uint32(r[12:]), "sn: the client's una")
	n := binary.LittleEndian.Uint32(r[20:])
	require.Equal(t, int(n), len(r)-specOverhead)
	frame := r[specOverhead:]
	require.Equal(t, int(binary.BigEndian.Uint32(frame)), len(frame)-4, "one whole frame")
	hlen := int(binary.BigEndian.Uint16(frame[4:]))
	var h map[string]any
	require.NoError(t, json.Unmarshal(frame[6:6+hlen], &h))
	assert.Equal(t, map[string]any{"v": 1.0, "op": "goodbye", "code": float64(specCodeUnath)}, h, "a goodbye, id 0 (absent), code 8, no msg")
}

// specKey is an AES-256 key ("16, 24 or 32 bytes").
var specKey = []byte("0123456789abcdef0123456789abcdef")

// specResetSize is the reset's size PROTOCOL.md states: 24 + a 37-byte goodbye frame.
const specResetSize = 61

// TestConformancePendingRequests (#23 items 4, 7, 9), over a stock kcp-go session (PROTOCOL.md:
// "exactly as kcp-go's DialWithOptions(addr, nil, 0, 0) sends them") and frames built by hand:
//   - "the first 4 refused requests (refused hellos included) are answered; the 5th closes the
//     pending conversation, without a reply";
//   - a request sent behind the hello before its reply arrived is refused with code 8;
//   - a hello shorter than 200 bytes is refused with code 6 while pending, and not held to it
//     once a hello has succeeded.
func TestConformancePendingRequests(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	code := func(r *rawConn) (uint64, int) {
		h, _ := r.next()
		return h.ID, int(h.Code)
	}

	t.Run("the 5th refusal closes", func(t *testing.T) {
		r := dialRawConn(t, d.Addr().String())
		for id := 1; id <= 4; id++ {
			r.sendRaw(specFrame(`{"v":1,"op":"ping","id":`+itoa(id)+`}`, nil))
			gotID, c := code(r)
			assert.Equal(t, uint64(id), gotID)
			assert.Equal(t, specCodeUnath, c, "refusal %d", id)
		}
		closedBefore := func() uint64 { in, _ := d.Stats(); return in.Transport.Closed }()
		r.sendRaw(specFrame(`{"v":1,"op":"ping","id":5}`, nil))
		pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Closed > closedBefore }, "the 5th refusal did not close the conversation")
		h, _, err := r.nextWithin(500 * time.Millisecond)
		if err == nil { // the server may reset the dead conversation when the client resends: never a reply
			assert.Zero(t, h.ID, "the 5th refused request was answered")
			assert.Equal(t, specCodeUnath, int(h.Code))
		}
	})

	t.Run("a request pipelined behind the hello", func(t *testing.T) {
		r := dialRawConn(t, d.Addr().String())
		hello := specHello(1, map[string]any{}, specMinHello)
		r.sendRaw(append(hello, specFrame(`{"v":1,"op":"ping","id":2}`, nil)...)) // one write: one datagram
		got := map[uint64]int{}
		for range 2 {
			id, c := code(r)
			got[id] = c
		}
		assert.Equal(t, map[uint64]int{1: 0, 2: specCodeUnath}, got)
	})

	t.Run("short hellos", func(t *testing.T) {
		r := dialRawConn(t, d.Addr().String())
		r.sendRaw(specHello(1, map[string]any{}, specMinHello-1))
		id, c := code(r)
		assert.Equal(t, uint64(1), id)
		assert.Equal(t, 6, c, "a 199-byte hello while pending")
		r.sendRaw(specHello(2, map[string]any{}, specMinHello))
		id, c = code(r)
		assert.Equal(t, uint64(2), id)
		assert.Zero(t, c, "a 200-byte hello")
		r.sendRaw(specFrame(`{"v":1,"op":"hello","id":3}`, nil))
		id, c = code(r)
		assert.Equal(t, uint64(3), id)
		assert.Zero(t, c, "a short hello once established")
	})
}
