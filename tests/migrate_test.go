package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
)

// TestKill9MidMigrationLosesNothing: a data directory written by the version that stored its
// data in bbolt is migrated when pipecached starts on it; a kill -9 in the middle of the
// migration loses nothing: the next start migrates again (or, if the copy was already in
// place, keeps it), and every record reads back with its value and version.
func TestKill9MidMigrationLosesNothing(t *testing.T) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	const records = 100_000
	writeBoltDataDir(t, dir, records)

	// Kill at the first progress line of the migration (a tenth of the records copied).
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-admin", "off", "-data-dir", dir)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		t.Log("pipecached: " + sc.Text())
		if !killed && strings.Contains(sc.Text(), `msg="store: migrating"`) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	cmd.Wait()
	require.True(t, killed, "the migration said nothing of its progress")
	_, err = os.Stat(filepath.Join(dir, nameservice.MigratingDir))
	t.Logf("killed mid-migration: %v (a half-built copy on disk)", err == nil)
	assert.FileExists(t, filepath.Join(dir, nameservice.FileName), "the bbolt file is kept until the migration is complete")

	d := startDaemon(t, bin, "-data-dir", dir, "-admin", "off")
	c := dialT(t, d.addr)
	ctx := pctest.Context(t)
	keys := make([]string, 0, 1000)
	for i := 0; i < records; i += cap(keys) {
		keys = keys[:0]
		for j := i; j < min(i+cap(keys), records); j++ {
			keys = append(keys, fmt.Sprint("key:", j))
		}
		items, err := c.MGet(ctx, keys...)
		require.NoError(t, err)
		for j, k := range keys {
			it, ok := items[k]
			require.True(t, ok, "%s lost in the migration", k)
			require.Equal(t, fmt.Sprint("value ", i+j), string(it.Value), k)
			require.Equal(t, uint64(i+j+1), it.Version, k)
		}
	}
	_, err = c.Set(ctx, "after", []byte("x"))
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(dir, nameservice.FileName))
	assert.FileExists(t, filepath.Join(dir, nameservice.FileName+".migrated"))
	assert.NoError(t, d.stop(t, syscall.SIGTERM))
}

// writeBoltDataDir writes n records as the bbolt version stored them: key:i = "value i" at
// version i+1.
func writeBoltDataDir(t *testing.T, dir string, n int) {
	start := time.Now()
	b, err := nameservice.OpenBolt(dir)
	require.NoError(t, err)
	ws := make([]nameservice.Write, 0, 10_000)
	for i := 0; i < n; i += cap(ws) {
		ws = ws[:0]
		for j := i; j < min(i+cap(ws), n); j++ {
			ws = append(ws, nameservice.Write{Key: fmt.Sprint("key:", j),
				Record: nameservice.Record{Value: []byte(fmt.Sprint("value ", j)), Version: uint64(j + 1)}})
		}
		require.NoError(t, b.Commit(ws))
	}
	require.NoError(t, b.Close())
	t.Logf("wrote %d records to bbolt in %v", n, time.Since(start))
}
