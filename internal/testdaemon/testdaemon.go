// Package testdaemon starts a pipecache daemon in a test's process: the one way the tests of
// every package start one (tests/, admin, stages' external tests, the bench, pipecachectl).
//
// It imports package daemon, so the tests of packages daemon imports (stages, transport,
// admin...) may use it only from an external test package (package stages_test); the helpers
// that need no daemon are in internal/pctest, which any test may import.
package testdaemon

import (
	"context"
	"os"
	"strconv"
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
//   - Cache.StoreTimeout: half of pctest.Timeout: the product's 2 s is wall-clock, and on a
//     loaded machine a commit (an fsync on a shared disk, the committer pre-empted) can take
//     longer; a write answered "timeout" may still commit (PROTOCOL.md), which a test that
//     checks a history cannot tell from a lost write. The timeout itself is tested in stages
//     and by the tests that set one;
//   - Threads (unless Loops is set): ThreadsEnv's value if it is set, else the machine's CPUs;
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
	if cfg.Cache.StoreTimeout == 0 {
		cfg.Cache.StoreTimeout = pctest.Timeout / 2
	}
	if cfg.Threads == 0 && cfg.Loops == "" {
		cfg.Threads = Threads(tb)
	}
	if cfg.Logger == nil {
		cfg.Logger = pctest.Logger(tb)
	}
	d, err := daemon.Start(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

// ThreadsEnv names the environment variable that chooses the mapping of stages to loops of the
// daemons a test run starts (tests/mapping_test.go runs the suite again under each mapping with
// it set). pipecached reads the same variable as its -threads.
const ThreadsEnv = "PIPECACHE_THREADS"

// Threads returns the -threads this run gives its daemons: ThreadsEnv's value, or 0 (the
// machine's CPUs).
func Threads(tb testing.TB) int {
	s := os.Getenv(ThreadsEnv)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	require.NoError(tb, err, "%s=%q", ThreadsEnv, s)
	return n
}
