package tests

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
)

// buildDaemon compiles cmd/pipecached once per test binary run.
func buildDaemon(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "pipecached")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/pipecached").CombinedOutput()
	require.NoError(tb, err, "go build: %s", out)
	return bin
}

type daemon struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// startDaemon runs pipecached on a free loopback port and waits for its "listening" line.
func startDaemon(tb testing.TB, bin string, args ...string) *daemon {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = tb.TempDir() // the default -data-dir is relative: keep it out of the source tree
	stderr, err := cmd.StderrPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	listening := regexp.MustCompile(`msg="pipecached listening" addr=(\S+)`)
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tb.Log("pipecached: " + sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
		d.done <- cmd.Wait()
	}()
	select {
	case d.addr = <-addrCh:
	case err := <-d.done:
		tb.Fatalf("pipecached exited before listening: %v", err)
	case <-time.After(pctest.Timeout):
		cmd.Process.Kill()
		tb.Fatal("pipecached never said it was listening")
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

func (d *daemon) stop(tb testing.TB, sig os.Signal) error {
	require.NoError(tb, d.cmd.Process.Signal(sig))
	select {
	case err := <-d.done:
		return err
	case <-time.After(pctest.Timeout):
		d.cmd.Process.Kill()
		tb.Fatal("pipecached did not stop")
		return nil
	}
}

func TestDaemonServesAndStopsGracefully(t *testing.T) {
	d := startDaemon(t, buildDaemon(t))
	c, err := client.Dial(d.addr)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pctest.Timeout)
	defer cancel()
	require.NoError(t, c.Ping(ctx))
	got, err := c.Echo(ctx, []byte(strings.Repeat("pipecache ", 1000)))
	require.NoError(t, err)
	assert.Len(t, got, 10_000)
	assert.NoError(t, d.stop(t, syscall.SIGTERM), "SIGTERM must end the daemon with exit code 0")
}

func TestDaemonEnvironmentOverridesAndBadFlags(t *testing.T) {
	bin := buildDaemon(t)
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	addr := l.LocalAddr().String()
	l.Close()

	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	// PIPECACHE_VERSION is no setting (#27 item 5): the daemon serves, not prints its version.
	cmd.Env = append(os.Environ(), "PIPECACHE_LISTEN="+addr, "PIPECACHE_VERSION=1")
	stderr, _ := cmd.StderrPipe()
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	listening := ""
	for listening == "" && sc.Scan() {
		if strings.Contains(sc.Text(), "pipecached listening") {
			listening = sc.Text()
		}
	}
	assert.Contains(t, listening, "addr="+addr, "PIPECACHE_LISTEN was not honoured")
	cmd.Process.Signal(syscall.SIGTERM)
	for sc.Scan() {
	}
	assert.NoError(t, cmd.Wait())

	out, err := exec.Command(bin, "-log-level", "loud").CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), "-log-level")
}
