package stages

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

func startIncoming(tb testing.TB, cfg IncomingConfig) *Incoming {
	tb.Helper()
	if cfg.Transport.Addr == "" {
		cfg.Transport.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = pctest.Logger(tb)
	}
	in, err := NewIncoming(cfg)
	require.NoError(tb, err)
	require.NoError(tb, in.Start())
	tb.Cleanup(func() {
		if err := in.Stop(context.Background()); err != nil && !errors.Is(err, loop.ErrLoopStopped) {
			tb.Errorf("stopping incoming: %v", err)
		}
	})
	return in
}

func dial(tb testing.TB, addr string, opts ...client.Option) *client.Client {
	tb.Helper()
	c, err := client.Dial(addr, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestIncomingPingAndEchoThroughSDK(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	c := dial(t, in.Addr().String())
	ctx := pctest.Context(t)
	require.NoError(t, c.Ping(ctx))
	rng := rand.New(rand.NewPCG(1, 1))
	for _, size := range []int{0, 1, 1375, 1376, 1377, 100_000, 1 << 20} {
		value := make([]byte, size)
		for i := range value {
			value[i] = byte(rng.Uint32())
		}
		got, err := c.Echo(ctx, value)
		require.NoError(t, err, "size %d", size)
		require.True(t, bytes.Equal(value, got), "size %d: echo differs", size)
	}
	_, err := c.Echo(ctx, make([]byte, 1<<20+1))
	assert.ErrorIs(t, err, client.ErrTooLarge)
	require.NoError(t, c.Ping(ctx), "the session survives a refused request")
}

func TestIncomingConcurrentCallersShareOneSession(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	c := dial(t, in.Addr().String())
	ctx := pctest.Context(t)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 50 {
				want := []byte(fmt.Sprintf("caller %d request %d", g, i))
				got, err := c.Echo(ctx, want)
				if !assert.NoError(t, err) || !assert.Equal(t, want, got) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, in.Stats().Transport.Conns, "all callers share one conversation")
}

// TestIncomingRoutesToNextStageAndBack: ops with a route become tasks on that stage's queue;
// the stage's reply comes back through Incoming's reply queue to the right request.
func TestIncomingRoutesToNextStageAndBack(t *testing.T) {
	next := newTestQueue(t, "next", 1024)
	var in *Incoming
	startLoop(t, loop.Config{Name: "next"}, next, func(tk *task.Task) {
		tk.Value = append(append(tk.Value[:0], "value of "...), tk.Key...)
		tk.Version = 7
		if err := in.Replies().Push(tk); err != nil {
			task.Put(tk)
		}
	})
	in = startIncoming(t, IncomingConfig{Routes: map[task.Op]*loop.Queue{task.OpGet: next}})
	c := dial(t, in.Addr().String())
	r, err := c.Get(pctest.Context(t), "user:1")
	require.NoError(t, err)
	assert.Equal(t, "value of user:1", string(r.Value))
	assert.Equal(t, uint64(7), r.Version)

	_, err = c.Set(pctest.Context(t), "k", []byte("v"))
	assert.ErrorIs(t, err, client.ErrUnknownOp, "an op with no stage behind it is refused clearly")
}

// rawSession is a stock kcp-go client speaking the wire protocol by hand.
type rawSession struct {
	tb   testing.TB
	sess *kcp.UDPSession
	sp   wire.Splitter
}

func dialRaw(tb testing.TB, addr string) *rawSession {
	s, err := kcp.DialWithOptions(addr, nil, 0, 0)
	require.NoError(tb, err)
	s.SetNoDelay(1, 10, 2, 1)
	s.SetStreamMode(true)
	tb.Cleanup(func() { s.Close() })
	return &rawSession{tb: tb, sess: s}
}

func (r *rawSession) write(b []byte) {
	_, err := r.sess.Write(b)
	require.NoError(r.tb, err)
}

func (r *rawSession) roundTrip(h wire.Header, value []byte) (wire.Header, []byte) {
	frame, err := wire.AppendFrame(nil, &h, value)
	require.NoError(r.tb, err)
	r.write(frame)
	return r.readReply()
}

func (r *rawSession) readReply() (wire.Header, []byte) {
	r.sess.SetReadDeadline(time.Now().Add(pctest.Timeout))
	for {
		body, err := r.sp.Next()
		require.NoError(r.tb, err)
		if body != nil {
			var h wire.Header
			v, err := wire.Decode(body, &h)
			require.NoError(r.tb, err)
			return h, append([]byte(nil), v...)
		}
		n, err := r.sess.Read(r.sp.Buffer(64 << 10))
		require.NoError(r.tb, err)
		r.sp.Commit(n)
	}
}

func TestIncomingStockKCPClientAndCodedErrors(t *testing.T) {
	in := startIncoming(t, IncomingConfig{MaxKey: 16})
	r := dialRaw(t, in.Addr().String())

	h, _ := r.roundTrip(wire.Header{V: 1, Op: task.OpPing, ID: 1}, nil)
	assert.Equal(t, uint64(1), h.ID)
	assert.Equal(t, task.CodeOK, h.Code)

	h, v := r.roundTrip(wire.Header{V: 1, Op: task.OpEcho, ID: 2}, []byte("hi"))
	assert.Equal(t, uint64(2), h.ID)
	assert.Equal(t, "hi", string(v))

	// An unknown op, a future protocol version, an oversized key: each a coded error reply.
	frame := rawFrame(`{"v":1,"op":"teleport","id":3}`)
	r.write(frame)
	h, _ = r.readReply()
	assert.Equal(t, task.CodeUnknownOp, h.Code)
	assert.Equal(t, uint64(3), h.ID)

	h, _ = r.roundTrip(wire.Header{V: 99, Op: task.OpPing, ID: 4}, nil)
	assert.Equal(t, task.CodeVersion, h.Code)

	h, _ = r.roundTrip(wire.Header{V: 1, Op: task.OpEcho, ID: 5, Key: bytes.Repeat([]byte("k"), 17)}, nil)
	assert.Equal(t, task.CodeTooLarge, h.Code)

	r.write(rawFrame(`{"v":1,"op":`))
	h, _ = r.readReply()
	assert.Equal(t, task.CodeBadRequest, h.Code)
	assert.NotEmpty(t, h.Msg)

	h, _ = r.roundTrip(wire.Header{V: 1, Op: task.OpPing, ID: 6}, nil)
	assert.Equal(t, task.CodeOK, h.Code, "the session still works after bad frames")
	assert.Equal(t, uint64(1), in.Stats().BadFrames)
}

func rawFrame(hdr string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(2+len(hdr)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(hdr)))
	return append(b, hdr...)
}

// TestIncomingHostileInputHarmsNobodyElse: junk datagrams, truncated segments, wrong convs and
// a stream with a hostile length prefix; a well-behaved client keeps working throughout, and the
// hostile conversation alone is closed.
func TestIncomingHostileInputHarmsNobodyElse(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	good := dial(t, in.Addr().String())
	ctx := pctest.Context(t)

	junk, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(in.Addr()))
	require.NoError(t, err)
	defer junk.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range 2000 {
		b := make([]byte, rng.IntN(100))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%3 == 0 && len(b) >= 24 { // looks like a KCP push for a random conv, with a lying length
			b[4] = 81
			binary.LittleEndian.PutUint32(b[20:], rng.Uint32())
		}
		junk.Write(b)
		if i%200 == 0 {
			require.NoError(t, good.Ping(ctx))
		}
	}

	hostile := dialRaw(t, in.Addr().String())
	hostile.write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	pctest.WaitFor(t, func() bool { return in.Stats().Transport.Closed >= 1 }, "hostile conversation never closed")

	got, err := good.Echo(ctx, []byte("still here"))
	require.NoError(t, err)
	assert.Equal(t, "still here", string(got))
	st := in.Stats().Transport
	assert.NotZero(t, st.Malformed)
	t.Logf("transport: %+v", st)
}

// TestIncomingUnderLossDuplicationReordering: with 10% of datagrams lost, 10% duplicated and 10%
// reordered each way, every reply arrives intact and matched to its request.
func TestIncomingUnderLossDuplicationReordering(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	relay := pctest.NewLossyRelay(t, in.Addr(), 0.10)
	c := dial(t, relay.Addr().String(), client.WithDialTimeout(pctest.Timeout), client.WithHeartbeat(time.Second, pctest.Timeout))
	ctx := pctest.Context(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 40 {
				want := make([]byte, rng.IntN(20_000))
				for j := range want {
					want[j] = byte(rng.Uint32())
				}
				want = binary.LittleEndian.AppendUint64(want, uint64(g<<32|i)) // unique per request
				got, err := c.Echo(ctx, want)
				if !assert.NoError(t, err) || !assert.True(t, bytes.Equal(want, got), "caller %d request %d: wrong reply", g, i) {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("transport: %+v", in.Stats().Transport)
}

func TestIncomingClientSurvivesServerRestartWithClearErrors(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	addr := in.Addr().String()
	c := dial(t, addr, client.WithHeartbeat(20*time.Millisecond, 200*time.Millisecond))
	ctx := pctest.Context(t)
	require.NoError(t, c.Ping(ctx))
	require.NoError(t, in.Stop(ctx))

	// The server is gone: calls fail with a clear error instead of hanging.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.Ping(short)
	cancel()
	require.Error(t, err)
	assert.True(t, errors.Is(err, client.ErrTimeout) || errors.Is(err, client.ErrUnavailable), "got %v", err)

	// A new server on the same address: the client redials by itself.
	in2, err := NewIncoming(IncomingConfig{Transport: transport.Config{Addr: addr}, Logger: pctest.Logger(t)})
	require.NoError(t, err)
	require.NoError(t, in2.Start())
	t.Cleanup(func() { in2.Stop(context.Background()) })
	pctest.WaitFor(t, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		return c.Ping(pctx) == nil
	}, "client never reconnected")
}

func TestDialGoneServerFailsClearly(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	addr := l.LocalAddr().String()
	l.Close() // nobody listens here now
	// A generous dial timeout: the port unreachable ends the dial at once, however long it is;
	// a short one could end a slow machine's dial first, with a timeout.
	_, err = client.Dial(addr, client.WithDialTimeout(pctest.Timeout))
	require.Error(t, err)
	assert.ErrorIs(t, err, client.ErrUnavailable, "the connected socket hears the port unreachable")
	assert.ErrorContains(t, err, "nothing listening")
}

// TestIncomingManyConversationsFromOneAddress: 20 KCP conversations share one client socket
// (one address, different convs); each gets its own replies.
func TestIncomingManyConversationsFromOneAddress(t *testing.T) {
	in := startIncoming(t, IncomingConfig{})
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(in.Addr()))
	require.NoError(t, err)
	defer conn.Close()

	const convs = 20
	ks := make(map[uint32]*kcp.KCP, convs)
	splitters := make(map[uint32]*wire.Splitter, convs)
	for conv := uint32(100); conv < 100+convs; conv++ {
		k := kcp.NewKCP(conv, func(b []byte, n int) { conn.Write(b[:n]) })
		k.NoDelay(1, 10, 2, 1)
		frame, err := wire.AppendFrame(nil, &wire.Header{V: 1, Op: task.OpEcho, ID: uint64(conv)}, []byte(fmt.Sprint("conv ", conv)))
		require.NoError(t, err)
		k.Send(frame)
		k.Update()
		ks[conv], splitters[conv] = k, &wire.Splitter{}
	}
	got := map[uint32]string{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(pctest.Timeout)
	for len(got) < convs && time.Now().Before(deadline) {
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil { // quiet: let every conversation retransmit and ACK
			for _, k := range ks {
				k.Update()
			}
			continue
		}
		conv := binary.LittleEndian.Uint32(buf)
		k := ks[conv]
		require.NotNil(t, k, "datagram for conv %d we never opened", conv)
		k.Input(buf[:n], kcp.IKCP_PACKET_REGULAR, true)
		for size := k.PeekSize(); size > 0; size = k.PeekSize() {
			sp := splitters[conv]
			sp.Commit(k.Recv(sp.Buffer(size)))
			body, err := sp.Next()
			require.NoError(t, err)
			if body != nil {
				var h wire.Header
				v, err := wire.Decode(body, &h)
				require.NoError(t, err)
				assert.Equal(t, uint64(conv), h.ID, "reply crossed conversations")
				got[conv] = string(v)
			}
		}
	}
	require.Len(t, got, convs)
	for conv, v := range got {
		assert.Equal(t, fmt.Sprint("conv ", conv), v)
	}
	assert.Equal(t, convs, in.Stats().Transport.Conns)
}

// TestIncomingAnswersInfoItself (#27 item 1): the info op is answered on Incoming's loop with
// IncomingConfig.Info's text for the section the request names, with no route to any stage; an
// error of Info is bad_request with its message; without Info the op is unknown_op.
func TestIncomingAnswersInfoItself(t *testing.T) {
	var infoTid atomic.Int64 // the thread Info ran on; the loop's goroutine is locked to its own
	in := startIncoming(t, IncomingConfig{Info: func(section string) ([]byte, error) {
		infoTid.Store(int64(unix.Gettid()))
		if section == "bad" {
			return nil, errors.New("no section \"bad\"")
		}
		return []byte("# " + section + "\nk:v\n"), nil
	}})
	c := dial(t, in.Addr().String())
	ctx := pctest.Context(t)
	text, err := c.Info(ctx, "Memory")
	require.NoError(t, err)
	assert.Equal(t, "# Memory\nk:v\n", text)
	var loopTid int64
	require.NoError(t, in.loop.Run(ctx, func() { loopTid = int64(unix.Gettid()) }))
	assert.Equal(t, loopTid, infoTid.Load(), "Info runs on Incoming's loop")
	_, err = c.Info(ctx, "bad")
	assert.ErrorIs(t, err, client.ErrBadRequest)
	assert.ErrorContains(t, err, `no section "bad"`)

	bare := dial(t, startIncoming(t, IncomingConfig{}).Addr().String())
	_, err = bare.Info(ctx, "")
	assert.ErrorIs(t, err, client.ErrUnknownOp)
}
