package dgram

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"
)

func testBlock(tb testing.TB, key byte) kcp.BlockCrypt {
	block, err := kcp.NewAESBlockCrypt(bytes.Repeat([]byte{key}, 32))
	require.NoError(tb, err)
	return block
}

// TestSealOpen: what Seal writes, Open reads back with the same key and not with another, and
// two datagrams of the same data differ (the nonce).
func TestSealOpen(t *testing.T) {
	data := []byte("a KCP datagram of twenty-four bytes or more")
	block := testBlock(t, 1)
	s := NewSealer(block)
	one, two := make([]byte, CryptHeader+len(data)), make([]byte, CryptHeader+len(data))
	require.Equal(t, len(one), s.Seal(one, data[:5], data[5:]))
	require.Equal(t, len(two), s.Seal(two, data, nil))
	assert.NotEqual(t, one, two, "every datagram has its own nonce")

	other := bytes.Clone(one)
	_, ok := Open(testBlock(t, 2), other)
	assert.False(t, ok, "another key does not open it")
	got, ok := Open(block, one)
	require.True(t, ok)
	assert.Equal(t, data, got)

	var clear *Sealer
	buf := make([]byte, len(data))
	assert.Equal(t, len(data), clear.Seal(buf, data[:5], data[5:]))
	assert.Equal(t, data, buf, "a nil Sealer sends in clear")
	assert.Zero(t, Overhead(nil))
	assert.Equal(t, CryptHeader, Overhead(block))
}

// TestCheckCryptRefusesAEAD: an AEAD crypt frames datagrams otherwise; it is refused, not
// used to send what no peer can read.
func TestCheckCryptRefusesAEAD(t *testing.T) {
	gcm, err := kcp.NewAESGCMCrypt(make([]byte, 32))
	require.NoError(t, err)
	assert.True(t, errors.Is(CheckCrypt(gcm), ErrAEAD))
	assert.NoError(t, CheckCrypt(testBlock(t, 1)))
	assert.NoError(t, CheckCrypt(nil))
}

// FuzzSealOpen: what Seal writes, Open reads back; anything else Open rejects or reads without
// failing.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("a KCP datagram of twenty-four bytes or more"), []byte{})
	block := testBlock(f, 1)
	s := NewSealer(block)
	f.Fuzz(func(t *testing.T, a, junk []byte) {
		buf := make([]byte, CryptHeader+len(a))
		n := s.Seal(buf, a[:len(a)/2], a[len(a)/2:])
		got, ok := Open(block, buf[:n])
		if len(a) >= kcp.IKCP_OVERHEAD && (!ok || !bytes.Equal(got, a)) {
			t.Fatalf("round trip of %d bytes: ok %v", len(a), ok)
		}
		Open(block, junk)
	})
}
