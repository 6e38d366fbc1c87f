package tests

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/processor"
)

// TestKill9LosesNoAcknowledgedExec: writers run execs on two hot keys at once, so that their
// writes ride group commits together: each increments its own member of one zset board by 1 and
// appends its next element to one shared list. The daemon is killed with SIGKILL in the middle;
// after a restart on the same data directory, no acknowledged exec is lost and nothing is there
// that was never sent: each member's score is the number of its acknowledged increments, or one
// more (the increment in flight at the kill may have committed), and the list holds, per
// writer, exactly its first n elements in order, n its acknowledged appends or one more.
func TestKill9LosesNoAcknowledgedExec(t *testing.T) { killUnderExecLoad(t) }

// killUnderExecLoad is the exec checker; args go to both daemons (a durability mode).
func killUnderExecLoad(t *testing.T, args ...string) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	daemonArgs := append([]string{"-data-dir", dir}, args...)
	d := startDaemon(t, bin, daemonArgs...)

	const writers = 8
	type tally struct{ incrAcked, incrSent, pushAcked, pushSent int }
	tallies := make([]tally, writers)
	var progress atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		c, err := client.Dial(d.addr)
		require.NoError(t, err)
		defer c.Close()
		wg.Go(func() {
			tl := &tallies[g]
			member := fmt.Sprintf("w%d", g)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				var err error
				if i%2 == 0 {
					tl.incrSent++
					_, _, err = c.Exec(ctx, "board", "zset", processor.ZIncrArgs(member, 1))
					if err == nil {
						tl.incrAcked++
					}
				} else {
					tl.pushSent++
					_, _, err = c.Exec(ctx, "feed", "list", processor.ListPushArgs(false, 0, []byte(fmt.Sprintf("%d:%d", g, tl.pushSent-1))))
					if err == nil {
						tl.pushAcked++
					}
				}
				cancel()
				if err != nil {
					return // the daemon died under us: this exec was not acknowledged
				}
				progress.Add(1)
			}
		})
	}
	pctest.WaitFor(t, func() bool { return progress.Load() >= 2000 }, "writers made no progress")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.done
	close(stop)
	wg.Wait()

	d2 := startDaemon(t, bin, daemonArgs...)
	c := dialT(t, d2.addr)
	ctx := pctest.Context(t)
	it, err := c.Get(ctx, "board")
	require.NoError(t, err, "the board is gone")
	members, err := processor.DecodeZSet(it.Value)
	require.NoError(t, err)
	scores := map[string]float64{}
	for _, m := range members {
		scores[m.Name] = m.Score
	}
	it, err = c.Get(ctx, "feed")
	require.NoError(t, err, "the feed is gone")
	elems, err := processor.DecodeList(it.Value)
	require.NoError(t, err)
	pushed := make([][]int, writers)
	for _, e := range elems {
		g, i, ok := strings.Cut(string(e), ":")
		require.True(t, ok, "an element never sent: %q", e)
		gi, err1 := strconv.Atoi(g)
		ii, err2 := strconv.Atoi(i)
		require.True(t, err1 == nil && err2 == nil && gi >= 0 && gi < writers, "an element never sent: %q", e)
		pushed[gi] = append(pushed[gi], ii)
	}
	acked := 0
	for g, tl := range tallies {
		score := int(scores[fmt.Sprintf("w%d", g)])
		assert.GreaterOrEqual(t, score, tl.incrAcked, "writer %d: acknowledged increments lost", g)
		assert.LessOrEqual(t, score, tl.incrSent, "writer %d: increments that were never sent", g)
		for j, i := range pushed[g] {
			require.Equal(t, j, i, "writer %d: its appends out of order, repeated or with a gap: %v", g, pushed[g])
		}
		assert.GreaterOrEqual(t, len(pushed[g]), tl.pushAcked, "writer %d: acknowledged appends lost", g)
		assert.LessOrEqual(t, len(pushed[g]), tl.pushSent, "writer %d: appends that were never sent", g)
		acked += tl.incrAcked + tl.pushAcked
	}
	assert.Len(t, scores, writers, "a member that no writer incremented")
	t.Logf("%d acknowledged execs survived SIGKILL", acked)
	assert.NoError(t, d2.stop(t, syscall.SIGTERM))
}
