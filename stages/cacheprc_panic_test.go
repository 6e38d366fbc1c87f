package stages

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
)

// TestPanickingHandlerLeavesNoKeyWedged: a handler that panics on one key answers that request
// (internal), every request waiting on the key, and leaves the key usable and every other key
// untouched, whether it panics on a hot key, while a cold key loads, or inside an mget.
func TestPanickingHandlerLeavesNoKeyWedged(t *testing.T) {
	d, err := StartDaemon(DaemonConfig{DataDir: t.TempDir(), Logger: testLogger(t),
		Incoming: IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}}})
	require.NoError(t, err)
	t.Cleanup(func() { d.Stop(context.Background()) })
	c := dial(t, d.Addr().String())
	ctx := testCtx(t)
	_, err = c.Set(ctx, "hot", []byte("1"))
	require.NoError(t, err)
	_, err = c.Set(ctx, "bystander", []byte("b"))
	require.NoError(t, err)

	setHook := func(fn func(key string)) {
		require.NoError(t, d.cache.Loop().Run(ctx, func() {
			if fn == nil {
				d.cache.testHook = nil
				return
			}
			d.cache.testHook = func(tk *task.Task) { fn(string(tk.Key)) }
		}))
	}
	setHook(func(key string) {
		if key == "hot" || key == "cold" {
			panic("boom on " + key)
		}
	})
	_, err = c.Get(ctx, "hot")
	assert.ErrorIs(t, err, client.ErrInternal, "a request whose handler panicked is answered")
	_, err = c.Get(ctx, "cold") // panics in the load's completion, when the get resumes
	assert.ErrorIs(t, err, client.ErrInternal)
	_, err = c.MGet(ctx, "bystander", "hot", "cold", "other")
	assert.ErrorIs(t, err, client.ErrInternal, "an mget with a panicking key is answered")
	it, err := c.Get(ctx, "bystander")
	require.NoError(t, err, "other keys are untouched")
	assert.Equal(t, "b", string(it.Value))

	setHook(nil)
	for _, key := range []string{"hot", "cold"} {
		_, err = c.Set(ctx, key, []byte("again"))
		require.NoError(t, err, "%s is not wedged", key)
		it, err = c.Get(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, "again", string(it.Value))
	}
	assert.Equal(t, uint64(4), d.cache.Loop().Stats().Panics)
}
