package nameservice

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFsyncNames(t *testing.T) {
	for _, m := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		got, err := ParseFsync(m.String())
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	_, err := ParseFsync("sometimes")
	assert.ErrorContains(t, err, `fsync mode "sometimes": want always, everysec, no`)

	var f Fsync
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&f, "fsync", "")
	require.NoError(t, fs.Parse([]string{"-fsync", "no"}))
	assert.Equal(t, FsyncNo, f)
}

// TestEverySecSyncsTheLogInTheBackground: with FsyncEverySec a commit leaves the log written
// but not synced, and the background sync syncs it.
func TestEverySecSyncsTheLogInTheBackground(t *testing.T) {
	s, err := OpenWith(t.TempDir(), Options{Fsync: FsyncEverySec})
	require.NoError(t, err)
	defer s.Close()
	synced := func() bool {
		s.wal.mu.Lock()
		defer s.wal.mu.Unlock()
		require.NotEmpty(t, s.wal.files, "the log is open")
		for f := range s.wal.files {
			if f.dirty.Load() {
				return false
			}
		}
		return true
	}
	require.NoError(t, s.Commit([]Write{{Key: "k", Record: Record{Value: []byte("v"), Version: 1}}}))
	deadline := time.Now().Add(time.Minute)
	for !synced() {
		require.True(t, time.Now().Before(deadline), "the log was never synced")
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAlwaysLeavesTheLogToPebble: with FsyncAlways no log file is wrapped: Pebble syncs it on
// every commit itself.
func TestAlwaysLeavesTheLogToPebble(t *testing.T) {
	s, err := OpenWith(t.TempDir(), Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Nil(t, s.wal)
}
