package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

var testKey = bytes.Repeat([]byte{0x5a}, 32)

// TestEncryptedSessions: with a pre-shared key (AES-GCM), the SDK and a stock kcp-go client
// dialling with kcp.NewAESGCMCrypt both work; a plain client, a client with another key, a
// client in the legacy AES-CFB framing, and an encrypted client of a plain server are never
// heard, cost the server no conversation, and fail to dial.
func TestEncryptedSessions(t *testing.T) {
	enc := testdaemon.Start(t, pipecached.Config{CryptKey: testKey})
	ctx := pctest.Context(t)

	c, err := dial(enc.Addr().String(), client.WithCryptKey(testKey))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(ctx, "secret", bytes.Repeat([]byte("s"), 5000)) // several segments
	require.NoError(t, err)
	it, err := c.Get(ctx, "secret")
	require.NoError(t, err)
	assert.Len(t, it.Value, 5000)

	gcm, err := kcp.NewAESGCMCrypt(testKey)
	require.NoError(t, err)
	raw := dialRawConnCrypt(t, enc.Addr().String(), gcm)
	raw.hello("")
	h, v := raw.call(wire.Header{Op: task.OpGet, ID: 5, Key: []byte("secret")}, nil)
	assert.Equal(t, task.CodeOK, h.Code)
	assert.Len(t, v, 5000, "a stock kcp-go client with the same key reads it")

	in, _ := enc.Stats()
	conns := in.Transport.Opened
	short := client.WithDialTimeout(300 * time.Millisecond)
	_, err = client.Dial(enc.Addr().String(), short)
	assert.ErrorIs(t, err, client.ErrTimeout, "a plain client of an encrypted server")
	_, err = client.Dial(enc.Addr().String(), short, client.WithCryptKey(bytes.Repeat([]byte{1}, 32)))
	assert.ErrorIs(t, err, client.ErrTimeout, "another key")
	_, err = client.Dial(enc.Addr().String(), short, client.WithLegacyCryptKey(testKey))
	assert.ErrorIs(t, err, client.ErrTimeout, "the legacy framing")
	// Incoming counts the dials' datagrams when it reads them, maybe after the dials gave up.
	pctest.WaitFor(t, func() bool { in, _ = enc.Stats(); return in.Transport.Unauthenticated > 0 }, "undecryptable datagrams not counted")
	assert.Equal(t, conns, in.Transport.Opened, "undecryptable datagrams open no conversation")

	plain := testdaemon.Start(t, pipecached.Config{})
	_, err = client.Dial(plain.Addr().String(), short, client.WithCryptKey(testKey))
	assert.ErrorIs(t, err, client.ErrTimeout, "an encrypted client of a plain server")
	in, _ = plain.Stats()
	assert.Zero(t, in.Transport.Opened)

	_, err = client.Dial(enc.Addr().String(), client.WithCryptKey([]byte("short")))
	assert.ErrorIs(t, err, client.ErrBadRequest, "a key of the wrong size")
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(good, []byte("  "+string(bytes.Repeat([]byte("ab"), 32))+"\n"), 0o600))
	key, err := client.ReadKeyFile(good)
	require.NoError(t, err)
	assert.Len(t, key, 32)
	for _, bad := range []string{"xyz", "abcd", string(bytes.Repeat([]byte("ab"), 33))} {
		_, err := wire.ParseKey([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// TestLegacyCryptIsBehindAFlag: a server started with CryptLegacyCFB (-crypt-legacy-cfb) speaks
// kcp-go's AES-CFB framing, to the SDK's WithLegacyCryptKey and to a stock kcp-go client with
// kcp.NewAESBlockCrypt, and not AES-GCM.
func TestLegacyCryptIsBehindAFlag(t *testing.T) {
	legacy := testdaemon.Start(t, pipecached.Config{CryptKey: testKey, CryptLegacyCFB: true})
	c, err := client.Dial(legacy.Addr().String(), client.WithLegacyCryptKey(testKey))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Ping(pctest.Context(t)))
	cfb, err := kcp.NewAESBlockCrypt(testKey)
	require.NoError(t, err)
	dialRawConnCrypt(t, legacy.Addr().String(), cfb).hello("")
	_, err = client.Dial(legacy.Addr().String(), client.WithDialTimeout(300*time.Millisecond), client.WithCryptKey(testKey))
	assert.ErrorIs(t, err, client.ErrTimeout, "AES-GCM to a legacy server")
}

// TestTamperedDatagramsAreDroppedAndCounted: a relay on the path flips one bit in every third
// datagram the client sends. The server drops each of them and counts it; KCP resends what they
// carried, so the session works, and what the server stored is what the client sent.
func TestTamperedDatagramsAreDroppedAndCounted(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{CryptKey: testKey})
	var n atomic.Int64
	relay := newMutatingRelay(t, d.Addr().String(), func(b []byte) {
		if n.Add(1)%3 == 0 {
			b[len(b)/2] ^= 0x10
		}
	})
	c, err := client.Dial(relay, client.WithCryptKey(testKey), client.WithDialTimeout(time.Minute))
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	value := bytes.Repeat([]byte("0123456789"), 1000)
	for i := range 10 {
		_, err := c.Set(ctx, fmt.Sprint("k", i), value)
		require.NoError(t, err)
	}
	direct, err := client.Dial(d.Addr().String(), client.WithCryptKey(testKey))
	require.NoError(t, err)
	defer direct.Close()
	for i := range 10 {
		it, err := direct.Get(ctx, fmt.Sprint("k", i))
		require.NoError(t, err)
		require.Equal(t, value, it.Value)
	}
	in, _ := d.Stats()
	assert.GreaterOrEqual(t, in.Transport.Unauthenticated, uint64(n.Load()/3), "every tampered datagram counted")
}

// newMutatingRelay forwards UDP between one client and server, calling mutate on every
// datagram from the client first. It returns the address the client dials.
func newMutatingRelay(t *testing.T, server string, mutate func([]byte)) string {
	return startRelay(t, server, func(d []byte) bool { mutate(d); return true })
}
