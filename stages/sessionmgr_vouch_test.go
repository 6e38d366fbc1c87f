package stages

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVouchesForTokensAndIssuedResumesOnly: what admits a conversation ahead of strangers
// (#23 item 13) is a valid token with authentication, or a resume token this SessionMgr issued
// without; a forged, altered or foreign resume token, a wrong token, or junk is not.
func TestVouchesForTokensAndIssuedResumesOnly(t *testing.T) {
	hello := func(fields map[string]any) []byte { b, _ := json.Marshal(fields); return b }
	open, err := NewSessionMgr(SessionConfig{})
	require.NoError(t, err)
	other, err := NewSessionMgr(SessionConfig{})
	require.NoError(t, err)
	resume := open.newResume()
	b, err := hex.DecodeString(resume)
	require.NoError(t, err)
	b[len(b)-1] ^= 1 // one bit of its MAC
	altered := hex.EncodeToString(b)
	assert.True(t, open.Vouches(hello(map[string]any{"resume": resume, "pad": "..."})))
	assert.False(t, open.Vouches(hello(map[string]any{"resume": altered})), "an altered resume token")
	assert.False(t, open.Vouches(hello(map[string]any{"resume": other.newResume()})), "another server's resume token")
	assert.False(t, open.Vouches(hello(map[string]any{"resume": "00112233445566778899aabbccddeeff"})), "a forged resume token")
	assert.False(t, open.Vouches(hello(map[string]any{"name": "x"})), "no resume token")
	assert.False(t, open.Vouches(hello(map[string]any{"token": "anything"})), "without authentication a token says nothing")
	assert.False(t, open.Vouches([]byte("not json")))

	auth, err := NewSessionMgr(SessionConfig{Tokens: []string{"s3cret", "other"}})
	require.NoError(t, err)
	assert.True(t, auth.Vouches(hello(map[string]any{"token": "other"})))
	assert.False(t, auth.Vouches(hello(map[string]any{"token": "s3cre"})), "a wrong token")
	assert.False(t, auth.Vouches(hello(map[string]any{"resume": auth.newResume()})), "with authentication only a token vouches")
}
