package pctest

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// Timeout bounds every wait in the tests. It only turns a hang (a lost wake-up, a stuck
// conversation) into a failure, so it is generous on purpose: the suite must pass on a slow
// machine with busy loops holding every core (tests/doc.go), where a wait that takes
// milliseconds alone can take seconds. 60 s is well past that and well inside go test's
// 10-minute default, so a hang still fails the one test with its own message.
const Timeout = 60 * time.Second

// Context returns a context that ends when the test does, or after Timeout.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	tb.Cleanup(cancel)
	return ctx
}

// Logger returns a logger that writes every level, debug included, into the test's log.
// What it logs after the test has ended (a goroutine the test did not stop) makes the test
// panic, as tb.Log does: a component logging with it must be stopped in tb.Cleanup.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// WaitFor waits until cond holds, failing the test with msg (formatted with args) after
// Timeout. It first yields a few times, for a condition another goroutine meets at once, then
// polls every millisecond, so a long wait does not hold a core a loaded machine needs.
func WaitFor(tb testing.TB, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(Timeout)
	for spins := 0; !cond(); spins++ {
		if time.Now().After(deadline) {
			tb.Fatalf(msg, args...)
		}
		if spins < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}
