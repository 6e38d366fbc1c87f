package loop

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

func TestHistogramBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {time.Microsecond, 0}, {1500 * time.Nanosecond, 1},
		{2 * time.Microsecond, 1}, {3 * time.Microsecond, 2}, {time.Millisecond, 10},
		{1025 * time.Microsecond, 11}, {time.Hour, HistogramBuckets - 1},
	} {
		var h Histogram
		h.Observe(int64(c.d))
		s := h.Snapshot()
		assert.Equal(t, uint64(1), s.Counts[c.want], "%v in bucket %d", c.d, c.want)
		assert.Equal(t, uint64(1), s.Count())
		if b := BucketBound(c.want); b != 0 {
			assert.LessOrEqual(t, c.d, b, "%v over its bucket's bound", c.d)
		}
		if c.want > 0 {
			assert.Greater(t, c.d, BucketBound(c.want-1), "%v fits the bucket below", c.d)
		}
		assert.Equal(t, max(c.d, 0), s.Sum)
	}
	assert.Zero(t, BucketBound(HistogramBuckets-1), "the last bucket has no bound")
}

func TestHistogramObserveAllocatesNothing(t *testing.T) {
	var h Histogram
	assert.Zero(t, testing.AllocsPerRun(100, func() { h.Observe(12345) }))
}

// TestQueueMeasuresTheWaitOfStampedTasks: a task sent through an Outbox is stamped and its
// wait measured by the consuming loop (once: the stamp is cleared); an unstamped task is not.
func TestQueueMeasuresTheWaitOfStampedTasks(t *testing.T) {
	from := newTestQueue(t, "from", 16)
	to := newTestQueue(t, "to", 16)
	var stampedAfter int64 = -1
	sink := startLoop(t, Config{Name: "sink"}, to, func(tk *task.Task) {
		stampedAfter = tk.Queued
		task.Put(tk)
	})
	var out *Outbox
	src := startLoop(t, Config{Name: "src"}, from, func(tk *task.Task) { out.Push(tk) })
	out = NewOutbox(src, to.Push, nil)

	require.NoError(t, from.Push(task.Get()))
	require.NoError(t, src.Barrier(pctest.Context(t)))
	require.NoError(t, sink.Barrier(pctest.Context(t)))
	require.NoError(t, to.Push(task.Get())) // not stamped: not measured
	require.NoError(t, sink.Barrier(pctest.Context(t)))

	w := to.Stats().Wait
	assert.Equal(t, uint64(1), w.Count(), "one stamped task, one wait")
	assert.Zero(t, stampedAfter, "the consumer clears the stamp")
	assert.Zero(t, from.Stats().Wait.Count(), "tasks pushed straight into a queue are not measured")
}
