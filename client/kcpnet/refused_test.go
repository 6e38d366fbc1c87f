//go:build linux

package kcpnet

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

// closedPort returns a loopback UDP address nothing listens on (it did a moment ago).
func closedPort(tb testing.TB) netip.AddrPort {
	tb.Helper()
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	addr := l.LocalAddr().(*net.UDPAddr).AddrPort()
	require.NoError(tb, l.Close())
	return addr
}

// TestRefusedPortClosesAtOnce: on an unconnected socket the kernel reports a port unreachable
// only through the error queue (IP_RECVERR). Every conversation to that address ends with an
// error saying connection refused; a conversation to a live server on the same socket goes on.
func TestRefusedPortClosesAtOnce(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{})
	live, _ := dialRPC(t, e, in.Addr(), DialOptions{})
	dead := closedPort(t)
	r1, c1 := dialRPC(t, e, dead, DialOptions{})
	r2, c2 := dialRPC(t, e, dead, DialOptions{})
	require.Equal(t, c1.LocalAddr(), c2.LocalAddr(), "one shared socket")

	ctx := pctest.Context(t)
	_, err := r1.call(ctx, task.OpPing, nil)
	require.Error(t, err)
	for _, r := range []*rpc{r1, r2} {
		reason := r.waitClosed(t)
		assert.ErrorIs(t, reason, ErrRefused)
		assert.ErrorIs(t, reason, syscall.ECONNREFUSED)
		assert.Contains(t, reason.Error(), "connection refused")
		assert.Contains(t, reason.Error(), dead.String())
	}
	err = c2.Send([]byte{0, 0, 0, 4, 0, 2, '{', '}'})
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, err, ErrRefused, "Send says why the conversation closed")
	assert.ErrorIs(t, c1.Err(), ErrRefused)

	_, err = live.call(ctx, task.OpPing, nil)
	assert.NoError(t, err, "the live conversation on the same socket is untouched")
	st := e.Stats()
	assert.NotZero(t, st.Refusals)
	assert.Equal(t, 1, st.Conns)
	assert.Equal(t, uint64(2), st.Closed)
}

// TestCloseReportsOnceAndRefusesSends: Close ends a conversation once, with ErrClosed, and
// closing the engine ends the rest with ErrEngineClosed.
func TestCloseReportsOnceAndRefusesSends(t *testing.T) {
	in := startBare(t, bareConfig())
	e, err := NewEngine(Config{})
	require.NoError(t, err)
	r1, c1 := dialRPC(t, e, in.Addr(), DialOptions{})
	r2, c2 := dialRPC(t, e, in.Addr(), DialOptions{})
	ctx := pctest.Context(t)
	_, err = r2.call(ctx, task.OpPing, nil)
	require.NoError(t, err)

	require.NoError(t, c1.Close())
	require.NoError(t, c1.Close(), "a second Close is harmless")
	assert.Equal(t, ErrClosed, r1.waitClosed(t))
	assert.ErrorIs(t, c1.Send([]byte("x")), ErrClosed)

	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	assert.ErrorIs(t, r2.waitClosed(t), ErrEngineClosed)
	assert.ErrorIs(t, c2.Send([]byte("x")), ErrEngineClosed)
	_, err = e.DialAddrPort(in.Addr(), DialOptions{Handler: newRPC()})
	assert.ErrorIs(t, err, ErrEngineClosed)
	assert.Equal(t, 0, e.Stats().Conns)
}

func TestDialRejectsBadOptions(t *testing.T) {
	e := newTestEngine(t, Config{})
	good := netip.MustParseAddrPort("127.0.0.1:7070")
	for _, tc := range []struct {
		name string
		addr netip.AddrPort
		o    DialOptions
	}{
		{"no handler", good, DialOptions{}},
		{"port 0", netip.MustParseAddrPort("127.0.0.1:0"), DialOptions{Handler: newRPC()}},
		{"unspecified", netip.MustParseAddrPort("0.0.0.0:7070"), DialOptions{Handler: newRPC()}},
		{"invalid", netip.AddrPort{}, DialOptions{Handler: newRPC()}},
		{"negative window", good, DialOptions{Handler: newRPC(), Window: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.DialAddrPort(tc.addr, tc.o)
			assert.ErrorIs(t, err, ErrBadConfig)
		})
	}
	_, err := e.Dial("no-such-host.invalid:1", DialOptions{Handler: newRPC()})
	assert.Error(t, err)
	_, err = NewEngine(Config{MTU: 100})
	assert.ErrorIs(t, err, ErrBadConfig)
	def, err := Default()
	require.NoError(t, err)
	assert.Error(t, def.Close(), "the default engine is not closed")
	def2, _ := Default()
	assert.Same(t, def, def2)
}

func TestSendQueueBound(t *testing.T) {
	// A peer that never answers: a bound socket nobody reads (no ICMP either).
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer l.Close()
	e := newTestEngine(t, Config{MaxSendQueue: 32})
	r, c := dialRPC(t, e, l.LocalAddr().(*net.UDPAddr).AddrPort(), DialOptions{})
	_ = r
	frame := make([]byte, 1000)
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		full = c.Send(frame)
	}
	assert.True(t, errors.Is(full, ErrSendQueueFull), "got %v", full)
	assert.LessOrEqual(t, c.WaitSnd(), 33)
}

// TestCloseWhileSending: closing conversations and the engine while goroutines send on them
// races with nothing (run with -race) and ends every conversation once.
func TestCloseWhileSending(t *testing.T) {
	in := startBare(t, bareConfig())
	e, err := NewEngine(Config{})
	require.NoError(t, err)
	const convs = 8
	closed := make(chan error, convs)
	frame := []byte{0, 0, 0, 4, 0, 2, '{', '}'}
	var wg sync.WaitGroup
	for i := range convs {
		c, err := e.DialAddrPort(in.Addr(), DialOptions{Handler: HandlerFuncs{
			OnClose: func(_ *Conn, reason error) { closed <- reason }}})
		require.NoError(t, err)
		wg.Go(func() {
			for c.Send(frame) == nil {
			}
		})
		if i%2 == 0 {
			wg.Go(func() { c.Close() })
		}
	}
	require.NoError(t, e.Close())
	wg.Wait()
	for range convs {
		select {
		case reason := <-closed:
			assert.True(t, errors.Is(reason, ErrClosed) || errors.Is(reason, ErrEngineClosed), "reason %v", reason)
		case <-time.After(pctest.Timeout):
			t.Fatal("a conversation never reported its end")
		}
	}
	select {
	case reason := <-closed:
		t.Fatalf("a conversation reported its end twice: %v", reason)
	default:
	}
}
