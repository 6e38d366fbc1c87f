package stages

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

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
		cfg.Logger = pctest.Logger(tb)
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
