package transport

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"

	crand "crypto/rand"

	"github.com/xtaci/kcp-go/v5"
)

// Optional encryption with a pre-shared key, wire-compatible with kcp-go's UDPSession and a
// BlockCrypt (kcp.NewAESBlockCrypt): every datagram is
//
//	nonce (16 random bytes) | CRC32-IEEE of the KCP data (4 bytes, little-endian) | KCP data
//
// encrypted as a whole with the BlockCrypt (kcp-go's AES is CFB with a fixed IV; the random
// nonce in front makes every datagram's ciphertext differ). A datagram that does not decrypt to
// a matching CRC is dropped: a peer with another key, or none, is never heard.
//
// What it protects: tokens, resume tokens and data from eavesdroppers on the path, and
// conversations from anyone without the key. What it does not: CRC32 is not a MAC and CFB is
// malleable, so an active attacker can flip bits undetected in some datagrams (the frame
// checks catch most); there is no forward secrecy and no replay protection; every holder of the
// key can read everyone's traffic. It is a pre-shared key, not TLS (README, "Encryption").

const (
	nonceSize       = 16
	crcSize         = 4
	cryptHeaderSize = nonceSize + crcSize
)

// crypter seals and opens datagrams. A nil *crypter is the plain protocol. Loop goroutine only.
type crypter struct {
	block kcp.BlockCrypt
	rng   *rand.ChaCha8 // nonces: unpredictable, and cheap enough for every datagram
}

func newCrypter(block kcp.BlockCrypt) *crypter {
	if block == nil {
		return nil
	}
	var seed [32]byte
	crand.Read(seed[:])
	return &crypter{block: block, rng: rand.NewChaCha8(seed)}
}

// overhead is how many bytes a sealed datagram adds.
func (c *crypter) overhead() int {
	if c == nil {
		return 0
	}
	return cryptHeaderSize
}

// seal writes data, sealed, to the front of buf and returns its length.
func (c *crypter) seal(buf, data []byte) int {
	if c == nil {
		return copy(buf, data)
	}
	n := cryptHeaderSize + copy(buf[cryptHeaderSize:], data)
	binary.LittleEndian.PutUint64(buf, c.rng.Uint64())
	binary.LittleEndian.PutUint64(buf[8:], c.rng.Uint64())
	binary.LittleEndian.PutUint32(buf[nonceSize:], crc32.ChecksumIEEE(buf[cryptHeaderSize:n]))
	c.block.Encrypt(buf[:n], buf[:n])
	return n
}

// open decrypts a received datagram in place and returns its KCP data, or false if it does not
// decrypt with this key.
func (c *crypter) open(data []byte) ([]byte, bool) {
	if c == nil {
		return data, true
	}
	if len(data) < cryptHeaderSize+kcp.IKCP_OVERHEAD {
		return nil, false
	}
	c.block.Decrypt(data, data)
	if crc32.ChecksumIEEE(data[cryptHeaderSize:]) != binary.LittleEndian.Uint32(data[nonceSize:]) {
		return nil, false
	}
	return data[cryptHeaderSize:], true
}
