//go:build linux

package kcpnet

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

// startKCPEcho runs a stock kcp-go listener (a UDPSession per conversation, as a third-party
// server would) that echoes every byte back.
func startKCPEcho(tb testing.TB, block kcp.BlockCrypt) netip.AddrPort {
	l, err := kcp.ListenWithOptions("127.0.0.1:0", block, 0, 0)
	require.NoError(tb, err)
	var wg sync.WaitGroup
	tb.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				return
			}
			s.SetNoDelay(1, 10, 2, 1)
			s.SetWindowSize(256, 256)
			s.SetStreamMode(true)
			wg.Go(func() {
				defer s.Close()
				io.Copy(s, s)
			})
		}
	})
	return l.Addr().(*net.UDPAddr).AddrPort()
}

func testKey() []byte { return []byte("0123456789abcdef0123456789abcdef") }

// aes is the server's default crypt: AES-GCM.
func aes(tb testing.TB) kcp.BlockCrypt {
	b, err := kcp.NewAESGCMCrypt(testKey())
	require.NoError(tb, err)
	return b
}

// aesCFB is the legacy framing's crypt.
func aesCFB(tb testing.TB) kcp.BlockCrypt {
	b, err := kcp.NewAESBlockCrypt(testKey())
	require.NoError(tb, err)
	return b
}

// TestInteropWithKCPGo: the engine speaks to a stock kcp-go UDPSession peer, in clear and
// encrypted in both framings (AES-GCM, AES-CFB), with small and large frames.
func TestInteropWithKCPGo(t *testing.T) {
	for _, crypt := range []string{"none", "aes-gcm", "aes-cfb"} {
		t.Run(crypt, func(t *testing.T) {
			var server, client kcp.BlockCrypt
			switch crypt {
			case "aes-gcm":
				server, client = aes(t), aes(t)
			case "aes-cfb":
				server, client = aesCFB(t), aesCFB(t)
			}
			addr := startKCPEcho(t, server)
			e := newTestEngine(t, Config{})
			r, _ := dialRPC(t, e, addr, DialOptions{Crypt: client})
			ctx := pctest.Context(t)
			for i, size := range []int{0, 10, 1400, 5000, 200_000} {
				want := bytes.Repeat([]byte{byte(i + 1)}, size)
				rep, err := r.call(ctx, task.OpEcho, want) // the echoed request is its own reply
				require.NoError(t, err, "size %d", size)
				assert.Equal(t, want, append([]byte{}, rep.value...), "size %d", size)
			}
			assert.Zero(t, e.Stats().Malformed)
		})
	}
}

// TestEncryptedAgainstTheServer: with the server's -crypt-key-file key the engine is heard; a
// plain conversation to the same server is not (its datagrams do not decrypt), and the two
// share the engine, each on a socket of its own.
func TestEncryptedAgainstTheServer(t *testing.T) {
	cfg := bareConfig()
	cfg.Crypt = aes(t)
	in := startBare(t, cfg)
	e := newTestEngine(t, Config{})
	r, c := dialRPC(t, e, in.Addr(), DialOptions{Crypt: aes(t)})
	ctx := pctest.Context(t)
	for range 20 {
		_, err := r.call(ctx, task.OpPing, nil)
		require.NoError(t, err)
	}
	rep, err := r.call(ctx, task.OpEcho, bytes.Repeat([]byte("k"), 100_000))
	require.NoError(t, err)
	assert.Len(t, rep.value, 100_000)

	plain, pc := dialRPC(t, e, in.Addr(), DialOptions{})
	assert.NotEqual(t, c.LocalAddr(), pc.LocalAddr())
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = plain.call(short, task.OpPing, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a server with a key never answers a plain client")
	assert.Equal(t, 2, e.Stats().Sockets)
	assert.True(t, pc.LastHeard().IsZero())
}
