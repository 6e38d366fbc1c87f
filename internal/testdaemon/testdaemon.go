// Package testdaemon starts a pipecache daemon in a test's process: the one way the tests of
// every package start one (tests/, admin, stages' external tests, the bench, pipecachectl).
//
// It imports package daemon, so the tests of packages daemon imports (stages, transport,
// admin...) may use it only from an external test package (package stages_test); the helpers
// that need no daemon are in internal/pctest, which any test may import.
package testdaemon

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
)

// Start runs a daemon with cfg and stops it when the test ends. What cfg leaves unset, it sets
// as a test wants it:
//   - Incoming.Transport.Addr: a free loopback port, 127.0.0.1:0;
//   - Store: an embedded store in a directory of the test's (unless OwnStore is set);
//   - Cache.ProcBudget: none (-1): the product's 10 ms is wall-clock, and a loaded machine
//     pre-empts CachePrc's thread for longer (tests/doc.go); the budget is tested in stages;
//   - Logger: the test's log (pctest.Logger).
func Start(tb testing.TB, cfg daemon.Config) *daemon.Daemon {
	tb.Helper()
	if cfg.Incoming.Transport.Addr == "" {
		cfg.Incoming.Transport.Addr = "127.0.0.1:0"
	}
	if cfg.Store == "" && cfg.OwnStore == nil {
		cfg.Store = tb.TempDir()
	}
	if cfg.Cache.ProcBudget == 0 {
		cfg.Cache.ProcBudget = -1
	}
	if cfg.Logger == nil {
		cfg.Logger = pctest.Logger(tb)
	}
	d, err := daemon.Start(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { d.Stop(context.Background()) })
	return d
}
