package stages

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/pipecache/pipecache/transport/wire"
)

// Resume tokens and vouching: which hellos may be admitted ahead of strangers' (PROTOCOL.md,
// "Before the hello"; transport.Config.Vouch).
//
// A resume token is 8 random bytes and the first 8 bytes of their HMAC-SHA256 under a key
// drawn when the stage is made, in hex: SessionMgr looks it up in byResume (its loop), and any
// goroutine can tell, from the token alone, that this server issued it, without SessionMgr's
// state. A forged token passes with probability 2^-64 per try; naming a live session takes the
// whole token.

const resumeRandom, resumeMAC = 8, 8

// newResume returns a new resume token. Loop goroutine only (like every session change).
func (m *SessionMgr) newResume() string {
	var b [resumeRandom + resumeMAC]byte
	rand.Read(b[:resumeRandom])
	m.resumeMAC(b[resumeRandom:], b[:resumeRandom])
	return hex.EncodeToString(b[:])
}

// resumeMAC puts the MAC of random into mac.
func (m *SessionMgr) resumeMAC(mac, random []byte) {
	h := hmac.New(sha256.New, m.resumeKey[:])
	h.Write(random)
	copy(mac, h.Sum(nil))
}

// issued reports whether token is a resume token this server made (alive or not).
func (m *SessionMgr) issued(token string) bool {
	var b [resumeRandom + resumeMAC]byte
	if hex.DecodedLen(len(token)) != len(b) {
		return false
	}
	if _, err := hex.Decode(b[:], []byte(token)); err != nil {
		return false
	}
	var want [resumeMAC]byte
	m.resumeMAC(want[:], b[:resumeRandom])
	return hmac.Equal(want[:], b[resumeRandom:])
}

// Vouches reports whether hello, the value of a hello request, says who its client is: with
// authentication, a valid token; without, a resume token this server issued. Incoming admits
// such conversations in a lane of their own, which no flood of strangers' conversations
// (from the client's own address, behind a NAT, too) can fill (transport/admit.go).
//
// It reads only what is fixed when the stage is made (the tokens, the resume key): safe for
// concurrent use; Incoming calls it on its loop.
func (m *SessionMgr) Vouches(hello []byte) bool {
	var req wire.HelloRequest
	if json.Unmarshal(hello, &req) != nil {
		return false
	}
	if len(m.cfg.Tokens) > 0 {
		return req.Token != "" && m.tokenOK(req.Token)
	}
	return req.Resume != "" && m.issued(req.Resume)
}
