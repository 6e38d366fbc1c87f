package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
)

// startDaemonOnSmallDisk runs pipecached with its data dir on a tmpfs of size bytes, in a
// private mount namespace (the mount goes away with the process). It skips the test where such
// a mount cannot be made.
func startDaemonOnSmallDisk(t *testing.T, bin, size string) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o750))
	script := `mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; shift 2; exec "$@"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, "sh", size, data,
		bin, "-listen", "127.0.0.1:0", "-data-dir", data, "-admin", "off")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	listening := regexp.MustCompile(`msg="pipecached listening" addr=(\S+)`)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("pipecached: " + sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Skip("cannot run the daemon on a small tmpfs here")
		}
		return a
	case <-time.After(testTimeout):
		t.Fatal("pipecached never said it was listening")
		return ""
	}
}

// TestFullDiskStillDeletes: on a full disk writes fail with unavailable (saying why), deletes
// still succeed, also in the same group commit as failing writes, and the space they free
// takes writes again.
func TestFullDiskStillDeletes(t *testing.T) {
	addr := startDaemonOnSmallDisk(t, buildDaemon(t), "3m")
	c := dialT(t, addr)
	ctx := testCtx(t)
	value := []byte(strings.Repeat("x", 200_000))
	stored := 0
	for ; stored < 100; stored++ {
		if _, err := c.Set(ctx, fmt.Sprint("fill:", stored), value); err != nil {
			assert.ErrorIs(t, err, client.ErrUnavailable)
			assert.ErrorContains(t, err, "no space left on device")
			break
		}
	}
	require.Less(t, stored, 100, "the disk never filled")
	require.Greater(t, stored, 2)

	// Deletes alone on the full disk: bbolt reuses the pages it has, and each succeeds.
	half := stored / 2
	for i := range half {
		require.NoError(t, c.Delete(ctx, fmt.Sprint("fill:", i)), "delete of fill:%d on a full disk", i)
	}
	// Deletes and sets at once, so that they share group commits: a set that cannot be written
	// never fails the deletes beside it (some deletes may still meet a disk the sets have filled
	// again: they say so).
	var wg sync.WaitGroup
	delErrs := make([]error, stored)
	for i := half; i < stored; i++ {
		wg.Go(func() { delErrs[i] = c.Delete(ctx, fmt.Sprint("fill:", i)) })
		wg.Go(func() { c.Set(ctx, fmt.Sprint("more:", i), value) })
	}
	wg.Wait()
	deleted := 0
	for i, err := range delErrs[half:] {
		if err == nil {
			deleted++
			continue
		}
		assert.ErrorIs(t, err, client.ErrUnavailable, "delete of fill:%d", half+i)
		assert.ErrorContains(t, err, "no space left on device")
	}
	assert.NotZero(t, deleted, "deletes in groups with failing sets")
	for i := range stored { // clear the sets' room, then there is room again
		c.Delete(ctx, fmt.Sprint("more:", i))
	}
	_, err := c.Set(ctx, "after", []byte("room again"))
	require.NoError(t, err, "the space deletes freed takes writes")
}
