package tests

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/processor"
)

// TestTTLExistsType (#27 item 1): ttl says the remaining time (with the jitter), -1 for none,
// -2 for a missing key; exists counts; type names a built-in encoding.
func TestTTLExistsType(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)

	_, err := c.Set(ctx, "plain", []byte("v"))
	require.NoError(t, err)
	_, err = c.Set(ctx, "short", []byte("v"), client.WithTTL(time.Hour))
	require.NoError(t, err)
	_, _, err = c.Exec(ctx, "board", "zset", processor.ZAddArgs("ann", 1, 0))
	require.NoError(t, err)

	ttl, err := c.TTL(ctx, "plain")
	require.NoError(t, err)
	assert.Equal(t, client.NoTTL, ttl)
	ttl, err = c.TTL(ctx, "missing")
	require.NoError(t, err)
	assert.Equal(t, client.MissingKey, ttl)
	ttl, err = c.TTL(ctx, "short")
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0))
	assert.LessOrEqual(t, ttl, time.Hour+6*time.Minute, "at most the TTL and its 10% jitter")

	n, err := c.Exists(ctx, "plain", "missing", "board", "plain")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "a key named twice counts twice")
	_, err = c.Exists(ctx)
	assert.ErrorIs(t, err, client.ErrBadRequest)

	for key, want := range map[string]string{"plain": "string", "board": "zset", "missing": "none"} {
		typ, err := c.Type(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, want, typ, key)
	}
}

// TestScanReturnsEveryKeyOnce (#27 item 1): a scan by steps returns every key that exists
// throughout exactly once, also while keys are written and deleted between its steps; MATCH
// filters; COUNT bounds a step; bad arguments are bad_request.
func TestScanReturnsEveryKeyOnce(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	c := dialT(t, d.Addr().String())
	ctx := pctest.Context(t)
	var stable []string
	for i := range 50 {
		k := fmt.Sprintf("user:%02d", i)
		stable = append(stable, k)
		_, err := c.Set(ctx, k, []byte("v"))
		require.NoError(t, err)
		_, err = c.Set(ctx, fmt.Sprintf("room:%02d", i), []byte("v"))
		require.NoError(t, err)
	}
	var got []string
	cursor, steps := "0", 0
	for {
		keys, next, err := c.Scan(ctx, cursor, "user:*", 7)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(keys), 7, "COUNT bounds a step")
		got = append(got, keys...)
		// churn between steps: new keys, deleted ones (not the stable ones)
		_, err = c.Set(ctx, fmt.Sprintf("user:x%02d", steps), []byte("v"))
		require.NoError(t, err)
		require.NoError(t, c.Delete(ctx, fmt.Sprintf("room:%02d", steps)))
		steps++
		if cursor = next; cursor == "0" {
			break
		}
		require.Less(t, steps, 1000, "the scan never ends")
	}
	seen := map[string]int{}
	for _, k := range got {
		seen[k]++
		assert.Equal(t, 1, seen[k], "%q returned twice", k)
		assert.Regexp(t, `^user:`, k)
	}
	for _, k := range stable {
		assert.Contains(t, seen, k)
	}
	assert.True(t, slices.IsSorted(got), "in key order")

	for _, bad := range []struct {
		cursor, match string
		count         int
	}{{"0", "", 1001}, {"0", "", -1}, {"!!", "", 0}, {"0", "[", 0}} {
		_, _, err := c.Scan(ctx, bad.cursor, bad.match, bad.count)
		assert.ErrorIs(t, err, client.ErrBadRequest, "%+v", bad)
	}
}
