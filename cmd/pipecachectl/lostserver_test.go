package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// TestShellWhoseServerStoppedSaysUnavailable: a shell (one client for every command) whose
// server stops says "unavailable" and why at the next command, without waiting out -timeout
// (30 s here: a command that waited for it would fail with a timeout).
func TestShellWhoseServerStoppedSaysUnavailable(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{})
	tc := newTestCtl(t, config{addr: d.Addr().String()}, formatText)
	_, err := tc.do("set", "k", "v")
	require.NoError(t, err)
	require.NoError(t, d.Stop(context.Background()))
	for _, cmd := range [][]string{{"get", "k"}, {"set", "k", "w"}, {"ping"}} {
		_, err := tc.do(cmd...)
		require.ErrorIs(t, err, client.ErrUnavailable, "%v", cmd)
		assert.NotErrorIs(t, err, client.ErrTimeout, "%v waited for -timeout", cmd)
		assert.ErrorContains(t, err, "refused", "%v", cmd)
		assert.Equal(t, 1, exitCode(err))
	}
}
