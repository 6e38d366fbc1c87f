package stages

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// testTimeout bounds every wait in these tests. It is generous on purpose: tests must pass on a
// slow, loaded machine; the bound only turns a hang (a lost wake-up) into a failure.
const testTimeout = 60 * time.Second

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// testLogger sends a loop's log lines to the test's log.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) { w.tb.Log(string(p)); return len(p), nil }

func newTestQueue(tb testing.TB, name string, capacity int) *loop.Queue {
	tb.Helper()
	q, err := loop.NewQueue(name, capacity)
	require.NoError(tb, err)
	return q
}

// startLoop starts a loop hosting one stage (named as the loop) that consumes q with handle, and
// stops it (checking it stopped cleanly) when the test ends.
func startLoop(tb testing.TB, cfg loop.Config, q *loop.Queue, handle func(*task.Task)) *loop.Loop {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	l, err := loop.New(cfg)
	require.NoError(tb, err)
	st, err := l.Host(loop.StageConfig{Name: cfg.Name})
	require.NoError(tb, err)
	if q != nil {
		require.NoError(tb, st.AddQueue(q, handle))
	}
	require.NoError(tb, st.Start())
	tb.Cleanup(func() {
		err := l.Stop(context.Background())
		if err != nil && !errors.Is(err, loop.ErrLoopStopped) {
			tb.Errorf("stopping loop %s: %v", l.Name(), err)
		}
		if s := l.Stats(); s.Panics != 0 {
			tb.Errorf("loop %s: %d handler panics", l.Name(), s.Panics)
		}
	})
	return l
}

// pushRetry pushes t, yielding while the queue is full, as a well-behaved producer outside the
// pipeline does.
func pushRetry(tb testing.TB, q *loop.Queue, t *task.Task) {
	for {
		err := q.Push(t)
		if err == nil {
			return
		}
		if !errors.Is(err, loop.ErrQueueFull) {
			tb.Errorf("push: %v", err)
			return
		}
		runtime.Gosched()
	}
}

// waitFor spins (yielding) until cond holds, failing the test after testTimeout.
//
// A test waits for the condition it means rather than assuming how fast a timer, a goroutine or
// another loop runs: the rule every test package follows is written in package tests (tests/doc.go).
func waitFor(tb testing.TB, cond func() bool, msg string, args ...any) {
	tb.Helper()
	if cond() {
		return
	}
	deadline := time.Now().Add(testTimeout)
	for spins := 0; !cond(); spins++ {
		if spins%1024 == 0 && time.Now().After(deadline) {
			tb.Fatalf(msg, args...)
		}
		runtime.Gosched()
	}
}
