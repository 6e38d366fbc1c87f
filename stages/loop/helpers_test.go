package loop

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

func newTestQueue(tb testing.TB, name string, capacity int) *Queue {
	tb.Helper()
	q, err := NewQueue(name, capacity)
	require.NoError(tb, err)
	return q
}

// startLoop starts a loop hosting one stage (named as the loop) that consumes q with handle,
// and stops it (checking it stopped cleanly) when the test ends.
func startLoop(tb testing.TB, cfg Config, q *Queue, handle func(*task.Task)) *Loop {
	tb.Helper()
	return startStage(tb, cfg, StageConfig{Name: cfg.Name}, q, handle).Loop()
}

// startStage is startLoop with the stage's own configuration.
func startStage(tb testing.TB, cfg Config, sc StageConfig, q *Queue, handle func(*task.Task)) *Stage {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = pctest.Logger(tb)
	}
	l, err := New(cfg)
	require.NoError(tb, err)
	st, err := l.Host(sc)
	require.NoError(tb, err)
	if q != nil {
		require.NoError(tb, st.AddQueue(q, handle))
	}
	require.NoError(tb, st.Start())
	tb.Cleanup(func() {
		err := l.Stop(context.Background())
		if err != nil && !errors.Is(err, ErrLoopStopped) {
			tb.Errorf("stopping loop %s: %v", l.Name(), err)
		}
		if s := l.Stats(); s.Panics != 0 {
			tb.Errorf("loop %s: %d handler panics", l.Name(), s.Panics)
		}
	})
	return st
}

// host hosts a stage named name on l.
func host(tb testing.TB, l *Loop, name string) *Stage {
	tb.Helper()
	st, err := l.Host(StageConfig{Name: name})
	require.NoError(tb, err)
	return st
}

// pushRetry pushes t, yielding while the queue is full, as a well-behaved producer outside the
// pipeline does.
func pushRetry(tb testing.TB, q *Queue, t *task.Task) {
	for {
		err := q.Push(t)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrQueueFull) {
			tb.Errorf("push: %v", err)
			return
		}
		runtime.Gosched()
	}
}
