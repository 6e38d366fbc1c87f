package tests

import (
	"bytes"
	"os"
	"path/filepath"
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

// TestEncryptedSessions: with a pre-shared key, the SDK and a stock kcp-go client dialling with
// kcp.NewAESBlockCrypt both work; a plain client, a client with another key, and an encrypted
// client of a plain server are never heard, cost the server no conversation, and fail to dial.
func TestEncryptedSessions(t *testing.T) {
	enc := testdaemon.Start(t, pipecached.Config{CryptKey: testKey})
	ctx := pctest.Context(t)

	c, err := client.Dial(enc.Addr().String(), client.WithCryptKey(testKey))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(ctx, "secret", bytes.Repeat([]byte("s"), 5000)) // several segments
	require.NoError(t, err)
	it, err := c.Get(ctx, "secret")
	require.NoError(t, err)
	assert.Len(t, it.Value, 5000)

	block, err := kcp.NewAESBlockCrypt(testKey)
	require.NoError(t, err)
	raw := dialRawConnCrypt(t, enc.Addr().String(), block)
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
	// Incoming counts the dials' datagrams when it reads them, maybe after the dials gave up.
	pctest.WaitFor(t, func() bool { in, _ = enc.Stats(); return in.Transport.Malformed > 0 }, "undecryptable datagrams not counted malformed")
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
