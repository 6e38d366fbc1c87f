package dgram

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"

	"github.com/xtaci/kcp-go/v5"
)

// Optional encryption with a pre-shared key, wire-compatible with kcp-go's UDPSession with a
// (non-AEAD) BlockCrypt (kcp.NewAESBlockCrypt). Every datagram is
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
	nonceSize = 16
	crcSize   = 4
	// CryptHeader is what sealing adds to a datagram: the nonce and the CRC.
	CryptHeader = nonceSize + crcSize
)

// ErrAEAD: kcp-go's AEAD crypts (kcp.NewAESGCMCrypt) frame datagrams differently (no CRC), and
// this package does not speak that format.
var ErrAEAD = errors.New("dgram: AEAD crypts are not supported (use kcp.NewAESBlockCrypt)")

// aead is what kcp-go's AEAD crypts have and its CFB crypts do not.
type aead interface {
	NonceSize() int
	Overhead() int
}

// CheckCrypt returns ErrAEAD for a crypt this package cannot use, nil otherwise (nil included).
func CheckCrypt(block kcp.BlockCrypt) error {
	if _, ok := block.(aead); ok {
		return ErrAEAD
	}
	return nil
}

// Overhead is how many bytes sealing with block adds to a datagram (0 for nil: in clear).
func Overhead(block kcp.BlockCrypt) int {
	if block == nil {
		return 0
	}
	return CryptHeader
}

// Sealer seals datagrams with one BlockCrypt. A nil *Sealer sends in clear. Its nonce generator
// is not safe for concurrent use: a Sealer belongs to one goroutine at a time (a SendBatch has
// its own).
type Sealer struct {
	block kcp.BlockCrypt // safe for concurrent use (kcp-go locks inside)
	rng   *rand.ChaCha8  // nonces: unpredictable, and cheap enough for every datagram
}

// NewSealer returns a Sealer for block, or nil for a nil block.
func NewSealer(block kcp.BlockCrypt) *Sealer {
	if block == nil {
		return nil
	}
	var seed [32]byte
	crand.Read(seed[:])
	return &Sealer{block: block, rng: rand.NewChaCha8(seed)}
}

// overhead is Overhead of the Sealer's block.
func (s *Sealer) overhead() int {
	if s == nil {
		return 0
	}
	return CryptHeader
}

// Seal writes a then b (b may be empty), sealed, to the front of buf and returns the
// datagram's length. buf must hold Overhead+len(a)+len(b) bytes.
func (s *Sealer) Seal(buf, a, b []byte) int {
	if s == nil {
		return copy(buf[copy(buf, a):], b) + len(a)
	}
	n := CryptHeader + copy(buf[CryptHeader:], a)
	n += copy(buf[n:], b)
	binary.LittleEndian.PutUint64(buf, s.rng.Uint64())
	binary.LittleEndian.PutUint64(buf[8:], s.rng.Uint64())
	binary.LittleEndian.PutUint32(buf[nonceSize:], crc32.ChecksumIEEE(buf[CryptHeader:n]))
	s.block.Encrypt(buf[:n], buf[:n])
	return n
}

// Open decrypts a received datagram in place and returns its KCP data, or false if it does not
// decrypt with block (nil: the datagram is in clear and returned as it is). Safe for concurrent
// use.
func Open(block kcp.BlockCrypt, data []byte) ([]byte, bool) {
	if block == nil {
		return data, true
	}
	if len(data) < CryptHeader+kcp.IKCP_OVERHEAD {
		return nil, false
	}
	block.Decrypt(data, data)
	if crc32.ChecksumIEEE(data[CryptHeader:]) != binary.LittleEndian.Uint32(data[nonceSize:]) {
		return nil, false
	}
	return data[CryptHeader:], true
}
