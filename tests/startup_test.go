package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
)

// runToExit runs pipecached with args in dir and returns its exit code and stderr. It fails the
// test if the daemon does not exit by itself within pctest.Timeout.
func runToExit(t *testing.T, dir, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), stderr.String()
		}
		require.NoError(t, err)
		return 0, stderr.String()
	case <-time.After(pctest.Timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("pipecached %v did not exit: %s", args, stderr.String())
		return 0, ""
	}
}

// assertCleanFailure checks what an operator sees when the daemon cannot start: exit code 1,
// no panic, and one error line that names the cause.
func assertCleanFailure(t *testing.T, code int, stderr, cause string) {
	t.Helper()
	assert.Equal(t, 1, code, "exit code; stderr:\n%s", stderr)
	assert.NotContains(t, stderr, "panic", "a start-up failure must not panic")
	assert.NotContains(t, stderr, "goroutine ", "a start-up failure must not dump stacks")
	var errLines []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "level=ERROR") {
			errLines = append(errLines, line)
		}
	}
	if assert.Len(t, errLines, 1, "one error line; stderr:\n%s", stderr) {
		assert.Contains(t, errLines[0], cause)
	}
}

// TestStartupFailuresSayWhy: every way the daemon can fail to start ends with one line naming
// the cause and exit code 1, never a panic.
func TestStartupFailuresSayWhy(t *testing.T) {
	bin := buildDaemon(t)

	t.Run("data dir is a file", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "data")
		require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
		code, stderr := runToExit(t, dir, bin, "-listen", "127.0.0.1:0", "-data-dir", file)
		assertCleanFailure(t, code, stderr, "not a directory")
	})

	t.Run("data dir in use by another daemon", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		first := startDaemon(t, bin, "-data-dir", data)
		code, stderr := runToExit(t, t.TempDir(), bin, "-listen", "127.0.0.1:0", "-data-dir", data)
		assertCleanFailure(t, code, stderr, "in use by another process")
		_ = first
	})

	t.Run("address in use", func(t *testing.T) {
		first := startDaemon(t, bin)
		code, stderr := runToExit(t, t.TempDir(), bin, "-listen", first.addr)
		assertCleanFailure(t, code, stderr, "address already in use")
	})

	t.Run("address not on this host", func(t *testing.T) {
		code, stderr := runToExit(t, t.TempDir(), bin, "-listen", "192.0.2.1:7070") // TEST-NET-1
		assertCleanFailure(t, code, stderr, "cannot assign requested address")
	})

	t.Run("read-only data dir", func(t *testing.T) {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		require.NoError(t, os.Mkdir(data, 0o750))
		// A private mount namespace: the read-only mount disappears with the process.
		script := `mount -t tmpfs -o ro tmpfs "$1" || exit 99; shift; exec "$@"`
		cmd := []string{"-m", "sh", "-c", script, "sh", data, bin, "-listen", "127.0.0.1:0", "-data-dir", data}
		code, stderr := runToExit(t, dir, "unshare", cmd...)
		if code == 99 || strings.Contains(stderr, "unshare failed") {
			t.Skipf("cannot make a read-only mount here: %s", stderr)
		}
		assertCleanFailure(t, code, stderr, "read-only file system")
	})
}
