package dgram

import (
	"bytes"
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

func testGCM(tb testing.TB, key byte) kcp.BlockCrypt {
	gcm, err := kcp.NewAESGCMCrypt(bytes.Repeat([]byte{key}, 32))
	require.NoError(tb, err)
	return gcm
}

// TestAEAD: with kcp-go's AES-GCM, what Seal writes (a 12-byte nonce, the data sealed, a
// 16-byte tag) Open reads back with the same key only, and a datagram with any bit flipped
// does not open at all; every datagram has a nonce of its own.
func TestAEAD(t *testing.T) {
	data := []byte("a KCP datagram of twenty-four bytes or more")
	gcm := testGCM(t, 1)
	require.True(t, IsAEAD(gcm))
	require.False(t, IsAEAD(testBlock(t, 1)))
	assert.Equal(t, 12+16, Overhead(gcm))
	s := NewSealer(gcm)
	sealed := make([]byte, Overhead(gcm)+len(data))
	require.Equal(t, len(sealed), s.Seal(sealed, data[:9], data[9:]))
	nonces := map[string]bool{}
	for range 1000 {
		buf := make([]byte, len(sealed))
		s.Seal(buf, data, nil)
		nonces[string(buf[:12])] = true
	}
	assert.Len(t, nonces, 1000, "a nonce is never used twice")

	_, ok := Open(testGCM(t, 2), bytes.Clone(sealed))
	assert.False(t, ok, "another key")
	_, ok = Open(testBlock(t, 1), bytes.Clone(sealed))
	assert.False(t, ok, "the block framing")
	for bit := range 8 * len(sealed) {
		tampered := bytes.Clone(sealed)
		tampered[bit/8] ^= 1 << (bit % 8)
		_, ok := Open(gcm, tampered)
		require.False(t, ok, "bit %d flipped: opened", bit)
	}
	got, ok := Open(gcm, sealed)
	require.True(t, ok)
	assert.Equal(t, data, got)
}

// TestAEADNoncePrefixChangesWhenTheCounterWraps: the counter part of the nonce never repeats
// under one prefix.
func TestAEADNoncePrefixChangesWhenTheCounterWraps(t *testing.T) {
	s := NewSealer(testGCM(t, 1))
	buf := make([]byte, 100)
	s.count = 1<<32 - 1
	s.Seal(buf, []byte("x"), nil)
	last := bytes.Clone(buf[:12])
	s.Seal(buf, []byte("x"), nil)
	assert.Equal(t, uint32(1), s.count)
	assert.Equal(t, []byte{0, 0, 0, 0}, buf[8:12], "counter 0")
	assert.NotEqual(t, last[:8], buf[:8], "with a new prefix")
}

// FuzzSealOpen: what Seal writes, Open reads back, in either framing; anything else Open
// rejects or reads without failing.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("a KCP datagram of twenty-four bytes or more"), []byte{})
	blocks := []kcp.BlockCrypt{testBlock(f, 1), testGCM(f, 1)}
	sealers := []*Sealer{NewSealer(blocks[0]), NewSealer(blocks[1])}
	f.Fuzz(func(t *testing.T, a, junk []byte) {
		for i, block := range blocks {
			buf := make([]byte, Overhead(block)+len(a))
			n := sealers[i].Seal(buf, a[:len(a)/2], a[len(a)/2:])
			got, ok := Open(block, buf[:n])
			if len(a) >= kcp.IKCP_OVERHEAD && (!ok || !bytes.Equal(got, a)) {
				t.Fatalf("round trip of %d bytes with %T: ok %v", len(a), block, ok)
			}
			Open(block, bytes.Clone(junk))
		}
	})
}
