package stages

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/transport"
)

// TestStopRunsInPipelineOrder: Stop finishes the stages in pipeline order, each closing the
// queues it feeds when it is done, so that the stage nearest the store finishes first among
// those that hold work and Incoming, which sends the last replies, last; and every write
// acknowledged while it stops is in the store.
func TestStopRunsInPipelineOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	stageFinished = func(stage string) { mu.Lock(); order = append(order, stage); mu.Unlock() }
	t.Cleanup(func() { stageFinished = func(string) {} })

	dir := t.TempDir()
	d, err := StartDaemon(DaemonConfig{DataDir: dir, Logger: testLogger(t),
		Incoming: IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}}})
	require.NoError(t, err)
	c := dial(t, d.Addr().String())
	ctx := testCtx(t)
	var acked sync.Map
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d:%d", g, i)
				if _, err := c.Set(ctx, key, []byte("v")); err != nil {
					return // the daemon stopped under it
				}
				acked.Store(key, true)
			}
		})
	}
	waitFor(t, func() bool { n := 0; acked.Range(func(any, any) bool { n++; return n < 200 }); return n >= 200 }, "no writes")
	stopCtx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, d.Stop(stopCtx))
	c.Close()
	wg.Wait()
	assert.Equal(t, []string{"outgoing", "cacheprc", "sessionmgr", "incoming"}, order)

	store, err := nameservice.Open(dir)
	require.NoError(t, err)
	defer store.Close()
	lost := 0
	acked.Range(func(k, _ any) bool {
		if _, ok, _ := store.Get(k.(string), 0); !ok {
			lost++
		}
		return true
	})
	assert.Zero(t, lost, "acknowledged writes missing from the store")
}
