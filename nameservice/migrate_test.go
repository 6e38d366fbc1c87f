package nameservice

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeBolt makes dir a data directory as the bbolt version left it: n records (every third
// with a deadline), then a delete, which raises the max version above every record's.
func writeBolt(tb testing.TB, dir string, n int) {
	tb.Helper()
	b, err := OpenBolt(dir)
	require.NoError(tb, err)
	var ws []Write
	for i := range n {
		r := Record{Value: []byte(fmt.Sprint("value ", i)), Version: uint64(i + 1)}
		if i%3 == 0 {
			r.ExpireAt = int64(10_000 + i)
		}
		ws = append(ws, Write{Key: fmt.Sprint("key:", i), Record: r})
	}
	ws = append(ws, Write{Key: "gone", Record: Record{Value: []byte("x"), Version: uint64(n + 1)}},
		Write{Key: "gone", Delete: true, Record: Record{Version: uint64(n + 2)}})
	require.NoError(tb, b.Commit(ws))
	require.NoError(tb, b.Close())
}

// checkMigrated checks that s holds what writeBolt wrote, expiry index included.
func checkMigrated(t *testing.T, s Store, n int) {
	t.Helper()
	for i := range n {
		r, ok, err := s.Get(fmt.Sprint("key:", i), 0)
		require.NoError(t, err)
		require.True(t, ok, "key:%d lost in the migration", i)
		assert.Equal(t, fmt.Sprint("value ", i), string(r.Value))
		assert.Equal(t, uint64(i+1), r.Version)
	}
	_, ok, err := s.Get("gone", 0)
	require.NoError(t, err)
	assert.False(t, ok)
	v, err := s.MaxVersion()
	require.NoError(t, err)
	assert.Equal(t, uint64(n+2), v, "the max version carried over, the delete's included")
	swept, err := s.SweepExpired(1<<50, n)
	require.NoError(t, err)
	assert.Equal(t, (n+2)/3, swept, "the expiry index was rebuilt")
}

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

// TestOpenMigratesABoltDataDirectory: a data directory of the bbolt version opens, migrated,
// said in the log; the bbolt file is set aside, not deleted; the next open does not migrate.
func TestOpenMigratesABoltDataDirectory(t *testing.T) {
	dir := t.TempDir()
	const n = 3*migrationBatch + 17
	writeBolt(t, dir, n)
	var log bytes.Buffer
	s, err := OpenWith(dir, Options{Logger: logTo(&log)})
	require.NoError(t, err)
	assert.Contains(t, log.String(), "migrating the data directory from bbolt to pebble")
	assert.Contains(t, log.String(), fmt.Sprintf("migration from bbolt complete\" records=%d", n))
	assert.NoFileExists(t, filepath.Join(dir, FileName))
	assert.FileExists(t, filepath.Join(dir, FileName+".migrated"), "the old file is kept for the operator")
	assert.NoDirExists(t, filepath.Join(dir, MigratingDir))
	require.NoError(t, s.Close())

	log.Reset()
	s, err = OpenWith(dir, Options{Logger: logTo(&log)})
	require.NoError(t, err)
	defer s.Close()
	assert.NotContains(t, log.String(), "migrat")
	checkMigrated(t, s, n)
}

// TestMigrationInterruptedBeforeItsRenameStartsOver: a half-built copy left by a crash is
// thrown away and the copy is made again from the bbolt file, which the crash did not touch.
func TestMigrationInterruptedBeforeItsRenameStartsOver(t *testing.T) {
	dir := t.TempDir()
	const n = 100
	writeBolt(t, dir, n)
	// What a crash mid-copy leaves: part of the records, and one the bbolt file does not have.
	lock, err := lockDir(dir)
	require.NoError(t, err)
	half, err := openPebbleLocked(dir, filepath.Join(dir, MigratingDir), Options{})
	require.NoError(t, err)
	require.NoError(t, half.Commit([]Write{{Key: "key:1", Record: Record{Value: []byte("half"), Version: 2}},
		{Key: "phantom", Record: Record{Value: []byte("p"), Version: 1}}}))
	require.NoError(t, half.Close())
	require.NoError(t, lock.Close())

	s, err := Open(dir)
	require.NoError(t, err)
	defer s.Close()
	checkMigrated(t, s, n)
	_, ok, err := s.Get("phantom", 0)
	require.NoError(t, err)
	assert.False(t, ok, "nothing of the interrupted copy survives")
}

// TestMigrationInterruptedAfterItsRenameOnlySetsTheFileAside: once the copy is in place, the
// bbolt file is not copied again (writes since the migration would be lost), only set aside.
func TestMigrationInterruptedAfterItsRenameOnlySetsTheFileAside(t *testing.T) {
	dir := t.TempDir()
	writeBolt(t, dir, 10)
	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Commit([]Write{{Key: "key:1", Record: Record{Value: []byte("newer"), Version: 100}}}))
	require.NoError(t, s.Close())
	// The crash came between the rename of the copy and that of the bbolt file.
	require.NoError(t, os.Rename(filepath.Join(dir, FileName+".migrated"), filepath.Join(dir, FileName)))

	s, err = Open(dir)
	require.NoError(t, err)
	defer s.Close()
	r, ok, err := s.Get("key:1", 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "newer", string(r.Value))
	assert.NoFileExists(t, filepath.Join(dir, FileName))
	assert.FileExists(t, filepath.Join(dir, FileName+".migrated"))
}

// TestMigrationRefusesABoltFileInUse: an earlier pipecached still running on the directory
// holds its bbolt file; the migration says so instead of copying a store being written.
func TestMigrationRefusesABoltFileInUse(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBolt(dir)
	require.NoError(t, err)
	defer b.Close()
	_, err = Open(dir)
	assert.ErrorContains(t, err, "in use by another process")
}
