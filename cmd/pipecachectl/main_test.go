package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// startDaemon runs a daemon with its embedded store on a free loopback port until the test ends.
func startDaemon(t *testing.T) *stages.Daemon {
	t.Helper()
	d, err := stages.StartDaemon(stages.DaemonConfig{DataDir: t.TempDir(),
		Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}}})
	require.NoError(t, err)
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

// runner runs one command against c and returns what it printed.
func runner(c server) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(c, 10*time.Second, args, &out)
		return out.String(), err
	}
}

func TestCommandsAndInteractiveMode(t *testing.T) {
	d := startDaemon(t)
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()

	do := runner(c)
	out, err := do("set", "greeting", "hello", "1h")
	require.NoError(t, err)
	assert.Contains(t, out, "OK (version ")
	out, err = do("get", "greeting")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "hello\n"))
	_, err = do("cas", "greeting", "x", "999999")
	assert.ErrorIs(t, err, client.ErrVersionMismatch)
	_, err = do("set", "n", "41")
	require.NoError(t, err)
	out, err = do("incr", "n")
	require.NoError(t, err)
	assert.Equal(t, "(integer) 42\n", out)
	_, err = do("del", "greeting")
	require.NoError(t, err)
	_, err = do("get", "greeting")
	assert.ErrorIs(t, err, client.ErrNotFound)
	_, err = do("frobnicate")
	assert.ErrorContains(t, err, "unknown command")
	_, err = do("get")
	assert.ErrorContains(t, err, "wrong number of arguments")

	var screen bytes.Buffer
	interactive(c, 10*time.Second, "test", strings.NewReader("incr n 8\nget missing\nstats\nquit\n"), &screen)
	assert.Contains(t, screen.String(), "(integer) 50")
	assert.Contains(t, screen.String(), "(error) pipecache: not_found")
	assert.Contains(t, screen.String(), "store_writes:")
}

func TestWatchPrintsChanges(t *testing.T) {
	d := startDaemon(t)
	watcher, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer watcher.Close()
	writer, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer writer.Close()

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- watch(ctx, watcher, "user:*", out) }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "watching") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err = writer.Set(context.Background(), "user:1", []byte("alice"))
	require.NoError(t, err)
	require.NoError(t, writer.Delete(context.Background(), "user:1"))
	for !strings.Contains(out.String(), "delete user:1") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, out.String(), "set user:1 = alice (version ")
	assert.Contains(t, out.String(), "delete user:1 (version ")
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestClusterMode: -cluster with a static list of two nodes: data commands go to each key's
// owner, nodes and owner answer, and the per-node commands say to ask one node.
func TestClusterMode(t *testing.T) {
	var addrs []string
	for range 2 {
		addrs = append(addrs, startDaemon(t).Addr().String())
	}
	c, err := connect("", strings.Join(addrs, ","), 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	do := runner(c)
	out, err := do("nodes")
	require.NoError(t, err)
	assert.ElementsMatch(t, addrs, strings.Fields(out))
	out, err = do("owner", "k")
	require.NoError(t, err)
	owner := strings.TrimSpace(out)
	assert.Contains(t, addrs, owner)
	_, err = do("set", "k", "v")
	require.NoError(t, err)
	out, err = do("get", "k")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "v\n"))
	one, err := client.Dial(owner) // the owner has it; the stores are separate, so only the owner
	require.NoError(t, err)
	defer one.Close()
	it, err := one.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
	_, err = do("stats")
	assert.ErrorContains(t, err, "ask one node")
}
