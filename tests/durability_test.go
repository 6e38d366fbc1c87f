package tests

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
)

// The kill -9 checker: writers load the daemon with every kind of change in durableOps; the
// daemon is killed (or stopped) in the middle; after a restart on the same data directory
// every acknowledged change is there, and nothing is there that no write made (no phantom:
// no value that was never written, no key never written, no counter beyond its increments).
// A change sent but not acknowledged when the daemon died may or may not have committed.

// durableOp is one kind of change the checker makes and verifies. Each writer makes its own
// sequence of each kind (k = 0, 1, 2...), one change at a time. To check another kind of
// change, add it to durableOps.
type durableOp struct {
	name string
	// do makes writer g's k-th change of this kind; nil means it was acknowledged.
	do func(ctx context.Context, c *client.Client, g, k int) error
	// check verifies writer g's changes after the restart: acked[k] says whether its k-th
	// change was acknowledged; len(acked) changes were sent.
	check func(t *testing.T, ctx context.Context, c *client.Client, g int, acked []bool)
}

var durableOps = []durableOp{
	{ // a new key each time
		name: "set",
		do: func(ctx context.Context, c *client.Client, g, k int) error {
			_, err := c.Set(ctx, fmt.Sprintf("set:%d:%d", g, k), []byte(fmt.Sprintf("value %d/%d", g, k)))
			return err
		},
		check: func(t *testing.T, ctx context.Context, c *client.Client, g int, acked []bool) {
			for k := range len(acked) + 2 { // and the next keys, never written
				key, want := fmt.Sprintf("set:%d:%d", g, k), fmt.Sprintf("value %d/%d", g, k)
				v, ok := getOrAbsent(t, ctx, c, key)
				switch {
				case k < len(acked) && acked[k]:
					assert.True(t, ok && v == want, "acknowledged %s lost (read %q, %v)", key, v, ok)
				case ok:
					assert.Equal(t, want, v, "phantom value of %s", key)
					assert.Less(t, k, len(acked), "phantom: %s was never written", key)
				}
			}
		},
	},
	{ // one key overwritten with k each time: it must not go back past an acknowledged k
		name: "overwrite",
		do: func(ctx context.Context, c *client.Client, g, k int) error {
			_, err := c.Set(ctx, fmt.Sprintf("last:%d", g), []byte(strconv.Itoa(k)))
			return err
		},
		check: func(t *testing.T, ctx context.Context, c *client.Client, g int, acked []bool) {
			checkSequence(t, ctx, c, fmt.Sprintf("last:%d", g), acked, func(k int) int { return k })
		},
	},
	{ // a counter: its value after the k-th incr is k+1 (the first creates it at 1)
		name: "incr",
		do: func(ctx context.Context, c *client.Client, g, k int) error {
			_, err := c.Incr(ctx, fmt.Sprintf("n:%d", g), 1)
			return err
		},
		check: func(t *testing.T, ctx context.Context, c *client.Client, g int, acked []bool) {
			checkSequence(t, ctx, c, fmt.Sprintf("n:%d", g), acked, func(k int) int { return k + 1 })
		},
	},
	{ // a key set, then deleted: once the delete is acknowledged, the key stays gone
		name: "delete",
		do: func(ctx context.Context, c *client.Client, g, k int) error {
			key := fmt.Sprintf("del:%d:%d", g, k)
			if _, err := c.Set(ctx, key, []byte("doomed")); err != nil {
				return err
			}
			return c.Delete(ctx, key)
		},
		check: func(t *testing.T, ctx context.Context, c *client.Client, g int, acked []bool) {
			for k := range acked {
				key := fmt.Sprintf("del:%d:%d", g, k)
				v, ok := getOrAbsent(t, ctx, c, key)
				if acked[k] {
					assert.False(t, ok, "the acknowledged delete of %s was lost", key)
				} else if ok {
					assert.Equal(t, "doomed", v, "phantom value of %s", key)
				}
			}
		},
	},
}

// getOrAbsent reads key after the restart: its value, or false if it does not exist.
func getOrAbsent(t *testing.T, ctx context.Context, c *client.Client, key string) (string, bool) {
	t.Helper()
	it, err := c.Get(ctx, key)
	if errors.Is(err, client.ErrNotFound) {
		return "", false
	}
	require.NoError(t, err, key)
	return string(it.Value), true
}

// checkSequence checks a key that the k-th change sets to value(k): after the restart it holds
// the value of the last acknowledged change or of a later one that was sent, nothing else.
func checkSequence(t *testing.T, ctx context.Context, c *client.Client, key string, acked []bool, value func(int) int) {
	t.Helper()
	lastAcked := -1
	for k, ok := range acked {
		if ok {
			lastAcked = k
		}
	}
	v, ok := getOrAbsent(t, ctx, c, key)
	if !ok {
		assert.Equal(t, -1, lastAcked, "%s lost: its change %d was acknowledged", key, lastAcked)
		return
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "phantom value of %s: %q", key, v)
	found := false
	for k := max(lastAcked, 0); k < len(acked); k++ {
		found = found || value(k) == n
	}
	assert.True(t, found, "%s = %d: not the value of its last acknowledged change (%d) nor of any later one sent (%d in all)",
		key, n, lastAcked, len(acked))
}

// TestKill9LosesNoAcknowledgedWrite: in every durability mode, a kill -9 in the middle of
// write load loses no acknowledged change and leaves no phantom.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	for _, mode := range []string{"always", "everysec", "no"} {
		t.Run("fsync="+mode, func(t *testing.T) { interruptUnderLoad(t, syscall.SIGKILL, "-fsync", mode) })
	}
}

// TestSIGTERMUnderLoadStopsGracefully: the same with SIGTERM, which must also exit 0.
func TestSIGTERMUnderLoadStopsGracefully(t *testing.T) { interruptUnderLoad(t, syscall.SIGTERM) }

// durabilityLoad is what the writers did: acked[g][op][k] for writer g's k-th change of
// durableOps[op].
type durabilityLoad struct {
	acked    [][][]bool
	progress atomic.Int64 // acknowledged changes, all writers
}

func interruptUnderLoad(t *testing.T, sig syscall.Signal, args ...string) {
	bin := buildDaemon(t)
	args = append([]string{"-data-dir", t.TempDir()}, args...)
	d := startDaemon(t, bin, args...)

	const writers = 8
	load := &durabilityLoad{acked: make([][][]bool, writers)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		c, err := client.Dial(d.addr)
		require.NoError(t, err)
		defer c.Close()
		wg.Go(func() { load.write(c, g, stop) })
	}
	// Kill once a fair number of changes were acknowledged, while the writers are still going.
	pctest.WaitFor(t, func() bool { return load.progress.Load() >= 2000 }, "writers made no progress")
	require.NoError(t, d.cmd.Process.Signal(sig))
	exitErr := <-d.done
	if sig == syscall.SIGTERM {
		assert.NoError(t, exitErr, "SIGTERM under load must end the daemon cleanly")
	}
	close(stop)
	wg.Wait()

	d2 := startDaemon(t, bin, args...)
	c := dialT(t, d2.addr)
	ctx := pctest.Context(t)
	for g := range writers {
		for op := range durableOps {
			durableOps[op].check(t, ctx, c, g, load.acked[g][op])
		}
	}
	t.Logf("%d acknowledged changes survived %v", load.progress.Load(), sig)
	assert.NoError(t, d2.stop(t, syscall.SIGTERM))
}

// write is writer g: each kind of change in turn, until the daemon stops answering or stop.
func (l *durabilityLoad) write(c *client.Client, g int, stop <-chan struct{}) {
	acked := make([][]bool, len(durableOps))
	defer func() { l.acked[g] = acked }()
	for i := 0; i < 20_000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		op := i % len(durableOps)
		k := len(acked[op])
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := durableOps[op].do(ctx, c, g, k)
		cancel()
		acked[op] = append(acked[op], err == nil)
		if err != nil {
			return // the daemon died under us: this change was not acknowledged
		}
		l.progress.Add(1)
	}
}
