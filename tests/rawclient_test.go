package tests

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// rawConn is a client written from PROTOCOL.md over a stock kcp-go session: frames by hand, no
// SDK, so tests can send what the SDK never would.
type rawConn struct {
	tb   testing.TB
	sess *kcp.UDPSession
	sp   wire.Splitter
}

func dialRawConn(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	return dialRawConnCrypt(tb, addr, nil)
}

// dialRawConnCrypt is dialRawConn with kcp-go's own encryption (nil: none).
func dialRawConnCrypt(tb testing.TB, addr string, block kcp.BlockCrypt) *rawConn {
	tb.Helper()
	s, err := kcp.DialWithOptions(addr, block, 0, 0)
	require.NoError(tb, err)
	s.SetNoDelay(1, 10, 2, 1)
	s.SetStreamMode(true)
	s.SetWindowSize(256, 256)
	tb.Cleanup(func() { s.Close() })
	return &rawConn{tb: tb, sess: s}
}

// sendRaw writes bytes to the stream as they are.
func (r *rawConn) sendRaw(b []byte) {
	r.tb.Helper()
	_, err := r.sess.Write(b)
	require.NoError(r.tb, err)
}

// send writes one frame; V is set to the protocol version if zero.
func (r *rawConn) send(h wire.Header, value []byte) {
	r.tb.Helper()
	if h.V == 0 {
		h.V = wire.Version
	}
	frame, err := wire.AppendFrame(nil, &h, value)
	require.NoError(r.tb, err)
	r.sendRaw(frame)
}

// sendHeader writes a frame whose JSON header is given as text (for fields the codec would never
// produce).
func (r *rawConn) sendHeader(hdr string, value []byte) {
	r.tb.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(hdr)+len(value)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(hdr)))
	r.sendRaw(append(append(b, hdr...), value...))
}

// next returns the next frame from the server (a reply or a push), failing the test if none
// comes within pctest.Timeout.
func (r *rawConn) next() (wire.Header, []byte) {
	r.tb.Helper()
	h, v, err := r.nextWithin(pctest.Timeout)
	require.NoError(r.tb, err)
	return h, v
}

// nextWithin returns the next frame, or the read error (a timeout) after d.
func (r *rawConn) nextWithin(d time.Duration) (wire.Header, []byte, error) {
	r.sess.SetReadDeadline(time.Now().Add(d))
	for {
		body, err := r.sp.Next()
		if err != nil {
			return wire.Header{}, nil, err
		}
		if body != nil {
			var h wire.Header
			v, err := wire.Decode(body, &h)
			if err != nil {
				return wire.Header{}, nil, err
			}
			return h, append([]byte(nil), v...), nil
		}
		n, err := r.sess.Read(r.sp.Buffer(64 << 10))
		if err != nil {
			return wire.Header{}, nil, err
		}
		r.sp.Commit(n)
	}
}

// reply returns the next reply, skipping pushes.
func (r *rawConn) reply() (wire.Header, []byte) {
	r.tb.Helper()
	for {
		h, v := r.next()
		if h.Op != task.OpPush || h.ID != 0 {
			return h, v
		}
	}
}

// call sends a request and returns its reply.
func (r *rawConn) call(h wire.Header, value []byte) (wire.Header, []byte) {
	r.tb.Helper()
	r.send(h, value)
	return r.reply()
}

// helloPad is the padding PROTOCOL.md asks a hello to carry, so that the server may answer it
// within its anti-amplification limit.
var helloPad = strings.Repeat("p", 200)

// hello opens a session with the given token and returns the reply's value.
func (r *rawConn) hello(token string) map[string]any {
	r.tb.Helper()
	body, _ := json.Marshal(map[string]any{"name": "raw", "token": token, "pad": helloPad})
	h, v := r.call(wire.Header{Op: task.OpHello, ID: 1}, body)
	require.Equal(r.tb, task.CodeOK, h.Code, "hello: %s", h.Msg)
	var rep map[string]any
	require.NoError(r.tb, json.Unmarshal(v, &rep))
	return rep
}
