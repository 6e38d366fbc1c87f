package tests

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
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
	case <-time.After(pctest.Timeout):
		t.Fatal("pipecached never said it was listening")
		return ""
	}
}

// TestFullDiskStillDeletes: on a full disk writes fail with unavailable (saying why), deletes
// still succeed (the store's reserve gives them room), also in the same group commits as
// refused writes, and once deletes have freed space, writes are taken again.
func TestFullDiskStillDeletes(t *testing.T) {
	addr := startDaemonOnSmallDisk(t, buildDaemon(t), "64m")
	c := dialT(t, addr)
	ctx := pctest.Context(t)
	value := make([]byte, 200_000)
	rand.Read(value) // incompressible: the store compresses its tables
	stored := 0
	for ; stored < 1000; stored++ {
		if _, err := c.Set(ctx, fmt.Sprint("fill:", stored), value); err != nil {
			assert.ErrorIs(t, err, client.ErrUnavailable)
			assert.ErrorContains(t, err, "disk full")
			break
		}
	}
	require.Less(t, stored, 1000, "the disk never filled")
	require.Greater(t, stored, 4)
	_, err := c.Set(ctx, "refused", value)
	assert.ErrorContains(t, err, "disk full: only deletes are accepted", "while full, writes that do not fit are refused at once")

	// Deletes and sets at once, so that they share group commits: every delete succeeds.
	var wg sync.WaitGroup
	delErrs := make([]error, stored)
	for i := range stored {
		wg.Go(func() { delErrs[i] = c.Delete(ctx, fmt.Sprint("fill:", i)) })
		wg.Go(func() { c.Set(ctx, fmt.Sprint("more:", i), value) })
	}
	wg.Wait()
	for i, err := range delErrs {
		assert.NoError(t, err, "delete of fill:%d on a full disk", i)
	}
	pctest.WaitFor(t, func() bool { _, err := c.Set(ctx, "after", []byte("room again")); return err == nil },
		"the space deletes freed never took writes again")
}
