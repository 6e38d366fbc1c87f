package client

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedPort returns a loopback UDP address nothing listens on (it was free a moment ago).
func closedPort(tb testing.TB) string {
	tb.Helper()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	addr := l.LocalAddr().String()
	require.NoError(tb, l.Close())
	return addr
}

// TestDialRefused: a dial to a loopback port nobody listens on says so (the kernel's
// port-unreachable), as ErrUnavailable, not as a timeout. The dial timeout is long so that a
// refusal that went unnoticed shows as ErrTimeout, not as a pass.
func TestDialRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("refusals are noticed on Linux only (a connected UDP socket)")
	}
	addr := closedPort(t)
	c, err := Dial(addr, WithDialTimeout(20*time.Second))
	if c != nil {
		c.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.False(t, errors.Is(err, ErrTimeout), "a refusal is not a timeout: %v", err)
	assert.ErrorContains(t, err, "connection refused: nothing listening at "+addr)
}
