package kcpnet

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"

	"github.com/xtaci/kcp-go/v5"
)

// Optional encryption with a pre-shared key, wire-compatible with kcp-go's UDPSession with a
// (non-AEAD) BlockCrypt, and with the server's transport (transport/crypt.go, whose format this
// repeats: the two must not drift). Every datagram is
//
//	nonce (16 random bytes) | CRC32-IEEE of the KCP data (4 bytes, little-endian) | KCP data
//
// encrypted as a whole with the BlockCrypt (kcp-go's CFB with a fixed IV; the random nonce in
// front makes every datagram's ciphertext differ). A datagram that does not decrypt to a
// matching CRC is dropped. What this protects and what not: README.md, "Encryption".

const (
	nonceSize       = 16
	crcSize         = 4
	cryptHeaderSize = nonceSize + crcSize
)

// sealer encrypts datagrams for one send batch; its nonce generator is not safe for concurrent
// use, so each batch has its own. A nil *sealer sends in clear.
type sealer struct {
	block kcp.BlockCrypt // safe for concurrent use (kcp-go locks inside)
	rng   *rand.ChaCha8  // nonces: unpredictable, and cheap enough for every datagram
}

func newSealer(block kcp.BlockCrypt) *sealer {
	if block == nil {
		return nil
	}
	var seed [32]byte
	crand.Read(seed[:])
	return &sealer{block: block, rng: rand.NewChaCha8(seed)}
}

// overhead is how many bytes sealing adds to a datagram.
func overhead(block kcp.BlockCrypt) int {
	if block == nil {
		return 0
	}
	return cryptHeaderSize
}

// seal writes a then b, sealed, to the front of buf and returns the datagram's length. buf must
// hold cryptHeaderSize+len(a)+len(b) bytes.
func (s *sealer) seal(buf, a, b []byte) int {
	if s == nil {
		return copy(buf[copy(buf, a):], b) + len(a)
	}
	n := cryptHeaderSize + copy(buf[cryptHeaderSize:], a)
	n += copy(buf[n:], b)
	binary.LittleEndian.PutUint64(buf, s.rng.Uint64())
	binary.LittleEndian.PutUint64(buf[8:], s.rng.Uint64())
	binary.LittleEndian.PutUint32(buf[nonceSize:], crc32.ChecksumIEEE(buf[cryptHeaderSize:n]))
	s.block.Encrypt(buf[:n], buf[:n])
	return n
}

// open decrypts a received datagram in place and returns its KCP data, or false if it does not
// decrypt with block (nil: the datagram is in clear and returned as is).
func open(block kcp.BlockCrypt, data []byte) ([]byte, bool) {
	if block == nil {
		return data, true
	}
	if len(data) < cryptHeaderSize+kcp.IKCP_OVERHEAD {
		return nil, false
	}
	block.Decrypt(data, data)
	if crc32.ChecksumIEEE(data[cryptHeaderSize:]) != binary.LittleEndian.Uint32(data[nonceSize:]) {
		return nil, false
	}
	return data[cryptHeaderSize:], true
}

// aead is what kcp-go's AEAD crypts (NewAESGCMCrypt) have and CFB crypts do not: their datagram
// format differs (no CRC), and this package does not speak it.
type aead interface {
	NonceSize() int
	Overhead() int
}

func checkCrypt(block kcp.BlockCrypt) error {
	if _, ok := block.(aead); ok {
		return fmt.Errorf("%w: AEAD crypts are not supported (use kcp.NewAESBlockCrypt, as the server does)", ErrBadConfig)
	}
	return nil
}
