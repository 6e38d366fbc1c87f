package dgram

import (
	crand "crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"

	"github.com/xtaci/kcp-go/v5"
)

// Optional encryption with a pre-shared key, wire-compatible with kcp-go's UDPSession with the
// same BlockCrypt, in either of kcp-go's two framings:
//
//   - AEAD (kcp.NewAESGCMCrypt, or kcp.NewAEADCrypt of any cipher.AEAD): every datagram is
//
//     nonce (NonceSize bytes: 12 for AES-GCM) | the KCP data, sealed (tag: Overhead bytes, 16)
//
//     with no additional data. A datagram that does not open (a flipped bit anywhere, another
//     key, none) is dropped: encryption and authentication. pipecache's default.
//   - Block (kcp.NewAESBlockCrypt and kcp-go's other block ciphers): every datagram is
//
//     nonce (16 random bytes) | CRC32-IEEE of the KCP data (4 bytes, little-endian) | KCP data
//
//     encrypted as a whole with the BlockCrypt (kcp-go's AES is CFB with a fixed IV; the random
//     nonce in front makes every datagram's ciphertext differ). A datagram that does not decrypt
//     to a matching CRC is dropped. CRC32 is not a MAC and CFB is malleable: an active attacker
//     can flip bits of the data and fix the CRC. Kept for clients that predate the AEAD framing
//     (the daemon's -crypt-legacy-cfb).
//
// Neither has forward secrecy or replay protection (KCP drops a conversation's duplicate
// segments; a replayed first datagram can open a conversation, bounded as any forged one is),
// and every holder of the key can read everyone's traffic: a pre-shared key, not TLS (README,
// "Encryption").
//
// AEAD nonces never repeat within a Sealer: a random prefix drawn when the Sealer is made and
// again every 2^32 datagrams, then a 32-bit counter. Two Sealers repeat one only if they draw
// the same prefix (for AES-GCM 64 random bits: about n²/2^65 for n prefixes drawn under one
// key), far less likely than random nonces for every datagram (about d²/2^97 for d datagrams).

const (
	nonceSize = 16
	crcSize   = 4
	// CryptHeader is what the block framing adds to a datagram: the nonce and the CRC.
	CryptHeader = nonceSize + crcSize
)

// aead is what kcp-go's AEAD crypts have (cipher.AEAD's methods) and its block crypts do not.
type aead interface {
	NonceSize() int
	Overhead() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// IsAEAD reports whether block uses the AEAD framing.
func IsAEAD(block kcp.BlockCrypt) bool {
	_, ok := block.(aead)
	return ok
}

// Overhead is how many bytes sealing with block adds to a datagram (0 for nil: in clear).
func Overhead(block kcp.BlockCrypt) int {
	switch b := block.(type) {
	case nil:
		return 0
	case aead:
		return b.NonceSize() + b.Overhead()
	}
	return CryptHeader
}

// Sealer seals datagrams with one BlockCrypt. A nil *Sealer sends in clear. Its nonce state is
// not safe for concurrent use: a Sealer belongs to one goroutine at a time (a SendBatch has its
// own).
type Sealer struct {
	block    kcp.BlockCrypt // safe for concurrent use (kcp-go locks inside; cipher.AEAD is)
	aead     aead           // block, if it is an AEAD
	overhead int
	rng      *rand.ChaCha8 // block nonces and AEAD nonce prefixes: unpredictable, and cheap
	prefix   [24]byte      // the AEAD nonce's random part (NonceSize-4 bytes of it)
	count    uint32        // the AEAD nonce's counter; the prefix is drawn again when it wraps
}

// NewSealer returns a Sealer for block, or nil for a nil block.
func NewSealer(block kcp.BlockCrypt) *Sealer {
	if block == nil {
		return nil
	}
	var seed [32]byte
	crand.Read(seed[:])
	s := &Sealer{block: block, overhead: Overhead(block), rng: rand.NewChaCha8(seed)}
	if a, ok := block.(aead); ok {
		s.aead = a
		s.rng.Read(s.prefix[:])
	}
	return s
}

// overheadOf is Overhead of the Sealer's block.
func (s *Sealer) overheadOf() int {
	if s == nil {
		return 0
	}
	return s.overhead
}

// Seal writes a then b (b may be empty), sealed, to the front of buf and returns the
// datagram's length. buf must hold Overhead+len(a)+len(b) bytes.
func (s *Sealer) Seal(buf, a, b []byte) int {
	if s == nil {
		return copy(buf[copy(buf, a):], b) + len(a)
	}
	if s.aead != nil {
		return s.sealAEAD(buf, a, b)
	}
	n := CryptHeader + copy(buf[CryptHeader:], a)
	n += copy(buf[n:], b)
	binary.LittleEndian.PutUint64(buf, s.rng.Uint64())
	binary.LittleEndian.PutUint64(buf[8:], s.rng.Uint64())
	binary.LittleEndian.PutUint32(buf[nonceSize:], crc32.ChecksumIEEE(buf[CryptHeader:n]))
	s.block.Encrypt(buf[:n], buf[:n])
	return n
}

// sealAEAD is Seal for an AEAD: the nonce, then the data sealed in place.
func (s *Sealer) sealAEAD(buf, a, b []byte) int {
	ns := s.aead.NonceSize()
	n := ns + copy(buf[ns:], a)
	n += copy(buf[n:], b)
	nonce := buf[:ns]
	copy(nonce, s.prefix[:ns-4])
	binary.BigEndian.PutUint32(nonce[ns-4:], s.count)
	if s.count++; s.count == 0 {
		s.rng.Read(s.prefix[:]) // 2^32 nonces with this prefix: a new one
	}
	return ns + len(s.aead.Seal(buf[ns:ns], nonce, buf[ns:n], nil))
}

// Open decrypts a received datagram in place and returns its KCP data, or false if it does not
// decrypt (and authenticate) with block (nil: the datagram is in clear and returned as it is).
// Safe for concurrent use.
func Open(block kcp.BlockCrypt, data []byte) ([]byte, bool) {
	switch b := block.(type) {
	case nil:
		return data, true
	case aead:
		ns := b.NonceSize()
		if len(data) < ns+b.Overhead()+kcp.IKCP_OVERHEAD {
			return nil, false
		}
		plain, err := b.Open(data[ns:ns], data[:ns], data[ns:], nil)
		return plain, err == nil
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
