package tests

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
)

// TestKill9LosesNoAcknowledgedWrite: writers load the daemon; it is killed with SIGKILL in the
// middle; after a restart on the same data directory every write that was acknowledged reads
// back.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) { interruptUnderLoad(t, syscall.SIGKILL) }

// TestSIGTERMUnderLoadStopsGracefully: the same with SIGTERM, which must also exit 0.
func TestSIGTERMUnderLoadStopsGracefully(t *testing.T) { interruptUnderLoad(t, syscall.SIGTERM) }

func interruptUnderLoad(t *testing.T, sig syscall.Signal) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	d := startDaemon(t, bin, "-data-dir", dir)

	const writers, perWriter = 8, 5000
	acked := make([][]int, writers) // acked[g] = indexes of writer g's acknowledged writes
	var progress atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		c, err := client.Dial(d.addr)
		require.NoError(t, err)
		defer c.Close()
		wg.Go(func() {
			for i := range perWriter {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := c.Set(ctx, fmt.Sprintf("w%d:%d", g, i), []byte(fmt.Sprintf("value %d/%d", g, i)))
				cancel()
				if err != nil {
					return // the daemon died under us: this write was not acknowledged
				}
				acked[g] = append(acked[g], i)
				progress.Add(1)
			}
		})
	}
	// Kill once a fair number of writes were acknowledged, while the writers are still going.
	waitUntil(t, func() bool { return progress.Load() >= 2000 }, "writers made no progress")
	require.NoError(t, d.cmd.Process.Signal(sig))
	exitErr := <-d.done
	if sig == syscall.SIGTERM {
		assert.NoError(t, exitErr, "SIGTERM under load must end the daemon cleanly")
	}
	close(stop)
	wg.Wait()

	d2 := startDaemon(t, bin, "-data-dir", dir)
	c := dialT(t, d2.addr)
	ctx := testCtx(t)
	total := 0
	for g := range writers {
		for _, i := range acked[g] {
			it, err := c.Get(ctx, fmt.Sprintf("w%d:%d", g, i))
			require.NoError(t, err, "acknowledged write w%d:%d lost", g, i)
			assert.Equal(t, fmt.Sprintf("value %d/%d", g, i), string(it.Value))
			total++
		}
	}
	t.Logf("%d acknowledged writes survived %v", total, sig)
	assert.NoError(t, d2.stop(t, syscall.SIGTERM))
}
