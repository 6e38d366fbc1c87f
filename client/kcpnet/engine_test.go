//go:build linux

package kcpnet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

func TestRoundTripsAgainstTheServer(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	r, c := dialRPC(t, e, in.Addr(), DialOptions{})
	ctx := pctest.Context(t)
	for i := range 50 {
		_, err := r.call(ctx, task.OpPing, nil)
		require.NoError(t, err, "ping %d", i)
		want := []byte(fmt.Sprintf("echo %d", i))
		rep, err := r.call(ctx, task.OpEcho, want)
		require.NoError(t, err, "echo %d", i)
		assert.Equal(t, want, rep.value)
	}
	assert.False(t, c.LastHeard().IsZero(), "the server was heard")
	st := e.Stats()
	assert.Equal(t, 1, st.Conns)
	assert.Equal(t, 1, st.Sockets)
	assert.Zero(t, st.Malformed+st.Unknown+st.SendDropped)
	t.Logf("100 round trips: %d datagrams out, %d in, %d ACKs held, %d piggybacked, %d alone",
		st.DatagramsOut, st.DatagramsIn, st.AcksHeld, st.AcksPiggybacked, st.AcksAlone)
}

// TestLargeFrames: a 1 MiB echo crosses several windows each way, and arrives intact.
func TestLargeFrames(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	r, _ := dialRPC(t, e, in.Addr(), DialOptions{})
	ctx := pctest.Context(t)
	_, err := r.call(ctx, task.OpPing, nil) // a pending conversation may send only small frames
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1 << 20, 300_000, 1 << 20} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(rng.Uint32())
		}
		rep, err := r.call(ctx, task.OpEcho, want)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, rep.value), "echo of %d bytes differs", size)
	}
}

// TestConcurrentSenders: many goroutines on one conversation; frames never interleave and every
// reply matches its request.
func TestConcurrentSenders(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	r, _ := dialRPC(t, e, in.Addr(), DialOptions{})
	ctx := pctest.Context(t)
	_, err := r.call(ctx, task.OpPing, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 100 {
				want := make([]byte, rng.IntN(5000))
				for j := range want {
					want[j] = byte(rng.Uint32())
				}
				want = fmt.Appendf(want, "%d/%d", g, i)
				rep, err := r.call(ctx, task.OpEcho, want)
				if !assert.NoError(t, err) || !assert.True(t, bytes.Equal(want, rep.value), "caller %d request %d", g, i) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSeveralSockets: with Config.Sockets, conversations are spread over that many sockets,
// each heard on its own.
func TestSeveralSockets(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{Sockets: 3})
	ctx := pctest.Context(t)
	locals := map[string]bool{}
	for range 6 {
		r, c := dialRPC(t, e, in.Addr(), DialOptions{})
		_, err := r.call(ctx, task.OpPing, nil)
		require.NoError(t, err)
		locals[c.LocalAddr().String()] = true
	}
	assert.Len(t, locals, 3)
	assert.Equal(t, 3, e.Stats().Sockets)
}

// TestLocalAddr: a conversation's datagrams leave from its DialOptions.LocalAddr, each address
// gets sockets of its own, replies come back to them, and an address of the wrong family is
// refused.
func TestLocalAddr(t *testing.T) {
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer raw.Close()
	e := newTestEngine(t, Config{Sockets: 2})
	locals := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	for _, local := range locals {
		c, err := e.DialAddrPort(raw.LocalAddr().(*net.UDPAddr).AddrPort(), DialOptions{Handler: newRPC(), LocalAddr: local})
		require.NoError(t, err)
		assert.Equal(t, local, c.LocalAddr().Addr())
		require.NoError(t, c.Send([]byte("hello")))
		require.NoError(t, raw.SetReadDeadline(time.Now().Add(pctest.Timeout)))
		buf := make([]byte, 2048)
		_, from, err := raw.ReadFromUDPAddrPort(buf)
		require.NoError(t, err)
		assert.Equal(t, local, from.Addr().Unmap(), "the datagram's source")
		assert.Equal(t, c.LocalAddr().Port(), from.Port())
	}
	assert.Equal(t, 4, e.Stats().Sockets, "Config.Sockets per local address")

	in := startBare(t, bareConfig())
	ctx := pctest.Context(t)
	for _, local := range locals {
		r, _ := dialRPC(t, e, in.Addr(), DialOptions{LocalAddr: local})
		_, err := r.call(ctx, task.OpPing, nil)
		require.NoError(t, err, "a reply to %s", local)
	}
	_, err = e.DialAddrPort(in.Addr(), DialOptions{Handler: newRPC(), LocalAddr: netip.MustParseAddr("::1")})
	assert.ErrorIs(t, err, ErrBadConfig)
	_, err = e.DialAddrPort(in.Addr(), DialOptions{Handler: newRPC(), LocalAddr: netip.MustParseAddr("192.0.2.1")})
	assert.Error(t, err, "an address that is not this host's cannot be bound")
}

// TestQueueThenFlush: frames queued on many conversations leave only at Flush, all in one
// sendmmsg per socket, and are answered.
func TestQueueThenFlush(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{AckDelay: time.Hour}) // the replies' ACKs wait: no send but ours
	const n = 8
	ctx := pctest.Context(t)
	errs := make(chan error, n)
	for range n {
		r, c := dialRPC(t, e, in.Addr(), DialOptions{})
		r.send = c.Queue
		go func() { _, err := r.call(ctx, task.OpPing, nil); errs <- err }()
	}
	pctest.WaitFor(t, func() bool { return e.ndirty.Load() == n }, "%d conversations never all dirty", n)
	before := e.Stats()
	assert.Zero(t, before.DatagramsOut, "queued, not sent")
	e.Flush()
	after := e.Stats()
	assert.Equal(t, uint64(n), after.DatagramsOut)
	assert.Equal(t, uint64(1), after.SendCalls-before.SendCalls, "one sendmmsg for all")
	for range n {
		require.NoError(t, <-errs)
	}
}
