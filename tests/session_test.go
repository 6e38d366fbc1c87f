package tests

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

func TestWrongTokenIsRefusedAndRightOneAccepted(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{Tokens: []string{"s3cret", "other"}}})
	_, err := dial(d.Addr().String(), client.WithToken("guess"))
	require.Error(t, err)
	assert.ErrorIs(t, err, client.ErrUnauthorized)
	_, err = dial(d.Addr().String())
	assert.ErrorIs(t, err, client.ErrUnauthorized, "no token at all")

	c, err := dial(d.Addr().String(), client.WithToken("s3cret"), client.WithName("test"))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(pctest.Context(t), "k", []byte("v"))
	require.NoError(t, err)
	assert.NotZero(t, c.Session())
	assert.Equal(t, int64(2), d.SessionStats().Refused)
}

// TestNothingButHelloBeforeHello: a stock KCP client that skips the hello is refused
// everything, a few times, and then its conversation is closed.
func TestNothingButHelloBeforeHello(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	s, err := kcp.DialWithOptions(d.Addr().String(), nil, 0, 0)
	require.NoError(t, err)
	defer s.Close()
	s.SetNoDelay(1, 10, 2, 1)
	s.SetStreamMode(true)
	for _, op := range []task.Op{task.OpGet, task.OpSet, task.OpPing, task.OpEcho} {
		frame, err := wire.AppendFrame(nil, &wire.Header{V: 1, Op: op, ID: 1, Key: []byte("k")}, nil)
		require.NoError(t, err)
		_, err = s.Write(frame)
		require.NoError(t, err)
		h := readHeader(t, s)
		assert.Equal(t, task.CodeUnauthorized, h.Code, "%s before hello", op)
	}
	frame, err := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpHeartbeat, ID: 1}, nil)
	require.NoError(t, err)
	_, err = s.Write(frame)
	require.NoError(t, err)
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Closed == 1 && in.Transport.Conns == 0 }, "a fifth refusal closes the pending conversation")
}

func readHeader(t *testing.T, s *kcp.UDPSession) wire.Header {
	t.Helper()
	h, _ := readFrame(t, s)
	return h
}

// readFrame reads the next frame on s: its header and value.
func readFrame(t *testing.T, s *kcp.UDPSession) (wire.Header, []byte) {
	t.Helper()
	var sp wire.Splitter
	s.SetReadDeadline(time.Now().Add(pctest.Timeout))
	for {
		body, err := sp.Next()
		require.NoError(t, err)
		if body != nil {
			var h wire.Header
			value, err := wire.Decode(body, &h)
			require.NoError(t, err)
			return h, value
		}
		n, err := s.Read(sp.Buffer(4096))
		require.NoError(t, err)
		sp.Commit(n)
	}
}

// TestSilentSessionExpiresAndIsCleanedUp: a client that stops sending heartbeats loses its
// session after the lease; the server frees it and closes its conversation.
func TestSilentSessionExpiresAndIsCleanedUp(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{MinHeartbeat: 20 * time.Millisecond}})
	s, err := kcp.DialWithOptions(d.Addr().String(), nil, 0, 0)
	require.NoError(t, err)
	defer s.Close()
	s.SetNoDelay(1, 10, 2, 1)
	s.SetStreamMode(true)
	frame, err := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpHello, ID: 1}, []byte(`{"name":"quiet","heartbeat_ms":20,"pad":"`+helloPad+`"}`))
	require.NoError(t, err)
	_, err = s.Write(frame)
	require.NoError(t, err)
	h, value := readFrame(t, s)
	require.Equal(t, task.CodeOK, h.Code)
	var welcome struct {
		Session uint64 `json:"session"`
	}
	require.NoError(t, json.Unmarshal(value, &welcome))
	require.NotZero(t, welcome.Session, "the hello opened a session")
	// Not "one session alive now": its 60 ms lease may be over already on a slow machine.

	// Say nothing more: three 20 ms beats later the session is gone, and so is its conversation.
	// The two counters move one after the other: wait for both.
	pctest.WaitFor(t, func() bool { st := d.SessionStats(); return st.Expired == 1 && st.Sessions == 0 }, "silent session never expired")
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Conns == 0 }, "conversation of an expired session not closed")
}

// TestClientResumesItsSessionAfterReconnect: a client whose KCP session dies redials and
// resumes the same server session with its resume token.
func TestClientResumesItsSessionAfterReconnect(t *testing.T) {
	// A long lease: this tests resuming, and a slow machine must not expire the session first.
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{LeaseBeats: 100}})
	// The client learns of the cut from the server's reset, at its next heartbeat: it need not
	// take a silence for death, which a loaded machine's 300 ms could be (a second conversation).
	c, err := dial(d.Addr().String(), client.WithHeartbeat(50*time.Millisecond, 10*time.Second))
	require.NoError(t, err)
	defer c.Close()
	first := c.Session()
	require.NotZero(t, first)

	// Cut the conversation on the server side: the client notices the silence and redials.
	in, _ := d.Stats()
	require.Equal(t, 1, in.Transport.Conns)
	require.NoError(t, dropAllConversations(d))
	ctx := pctest.Context(t)
	pctest.WaitFor(t, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.Set(pctx, "after", []byte("reconnect"))
		return err == nil
	}, "client never came back")
	assert.Equal(t, first, c.Session(), "the client should have resumed its session, not opened a new one")
	assert.Equal(t, int64(1), d.SessionStats().Sessions)
}

func dropAllConversations(d *pipecached.Daemon) error {
	ctx, cancel := context.WithTimeout(context.Background(), pctest.Timeout)
	defer cancel()
	return d.DropConversations(ctx)
}
