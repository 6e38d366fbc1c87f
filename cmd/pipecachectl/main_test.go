package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// testCtl is a ctl whose output the test reads.
type testCtl struct {
	*ctl
	out, errw *syncBuffer
}

// newTestCtl returns a ctl for cfg (addr or cluster set by the caller) printing in f.
func newTestCtl(tb testing.TB, cfg config, f format) *testCtl {
	tb.Helper()
	if cfg.timeout == 0 {
		cfg.timeout = 30 * time.Second
	}
	cfg.format = f
	tc := &testCtl{out: &syncBuffer{}, errw: &syncBuffer{}}
	tc.ctl = &ctl{cfg: cfg, print: &printer{format: f, out: tc.out, errw: tc.errw}}
	tb.Cleanup(tc.close)
	return tc
}

// do runs one command and returns what it printed on stdout (and clears it).
func (tc *testCtl) do(args ...string) (string, error) {
	err := tc.exec(context.Background(), args)
	return tc.out.take(), err
}

func TestCommands(t *testing.T) {
	tc := newTestCtl(t, config{addr: testdaemon.Start(t, daemon.Config{}).Addr().String()}, formatText)
	steps := []struct {
		args []string
		out  string // a prefix of stdout
		err  error  // an error it wraps, or nil
		code int
	}{
		{args: []string{"set", "greeting", "hello", "1h"}, out: "OK (version "},
		{args: []string{"get", "greeting"}, out: "hello\n(version "},
		{args: []string{"cas", "greeting", "x", "999999"}, err: client.ErrVersionMismatch, code: 1},
		{args: []string{"add", "greeting", "x"}, err: client.ErrExists, code: 1},
		{args: []string{"set", "n", "41", "30"}, out: "OK (version "}, // a TTL in plain seconds
		{args: []string{"incr", "n"}, out: "(integer) 42\n"},
		{args: []string{"DECR", "n", "2"}, out: "(integer) 40\n"},
		{args: []string{"touch", "n", "5m"}, out: "OK\n"},
		{args: []string{"mget", "n", "missing"}, out: "1) n = 40 (version "},
		{args: []string{"del", "greeting"}, out: "OK\n"},
		{args: []string{"get", "greeting"}, out: "(nil)\n"},    // missing: not an error
		{args: []string{"delete", "greeting"}, out: "(nil)\n"}, // already gone: not an error
		{args: []string{"replace", "greeting", "x"}, err: client.ErrNotFound, code: 1},
		{args: []string{"incr", "nothing"}, out: "(integer) 1\n"}, // a missing key counts from 0, as Redis's INCR
		{args: []string{"decr", "nothing-yet", "3"}, out: "(integer) -3\n"},
		{args: []string{"ping"}, out: "PONG\n"},
		{args: []string{"ttl", "nothing"}, out: "(integer) -1\n"}, // made by incr: no TTL
		{args: []string{"ttl", "gone"}, out: "(integer) -2\n"},
		{args: []string{"exists", "n", "gone", "nothing"}, out: "(integer) 2\n"},
		{args: []string{"type", "n"}, out: "string\n"},
		{args: []string{"type", "gone"}, out: "none\n"},
		{args: []string{"scan", "0", "MATCH", "nothing*", "COUNT", "100"}, out: "cursor 0\n1) nothing\n2) nothing-yet\n"},
		{args: []string{"scan", "0", "COUNT", "0"}, code: 2},
		{args: []string{"scan", "0", "LIMIT", "3"}, code: 2},
		{args: []string{"stats"}, out: ""},
		{args: []string{"frobnicate"}, code: 2},
		{args: []string{"get"}, code: 2},
		{args: []string{"set", "k", "v", "soon"}, code: 2},
		{args: []string{"set", "k", "v", "-5s"}, code: 2},
		{args: []string{"cas", "k", "v", "x"}, code: 2},
		{args: []string{"nodes"}, code: 2}, // not a cluster
		{args: []string{"help", "frobnicate"}, code: 2},
	}
	for _, s := range steps {
		out, err := tc.do(s.args...)
		assert.Equal(t, s.code, exitCode(err), "%v: %v", s.args, err)
		if s.err != nil {
			assert.ErrorIs(t, err, s.err, "%v", s.args)
		}
		if s.code == 0 {
			assert.True(t, strings.HasPrefix(out, s.out), "%v printed %q", s.args, out)
		}
	}
	out, err := tc.do("mget", "n", "missing")
	require.NoError(t, err)
	assert.Contains(t, out, "2) missing (nil)\n")
	out, err = tc.do("stats")
	require.NoError(t, err)
	assert.Contains(t, out, "store_writes:")
}

func TestRawAndJSONOutput(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	raw := newTestCtl(t, config{addr: addr}, formatRaw)
	js := newTestCtl(t, config{addr: addr}, formatJSON)

	out, err := raw.do("set", "k", "line one\nline two")
	require.NoError(t, err)
	assert.Regexp(t, `^\d+\n$`, out, "a write prints its version alone")
	out, err = raw.do("get", "k")
	require.NoError(t, err)
	assert.Equal(t, "line one\nline two", out, "a raw get prints the value, nothing else")
	assert.Regexp(t, `^\(version \d+\)\n$`, raw.errw.take(), "the version goes to stderr")
	out, err = raw.do("get", "missing")
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, "(nil)\n", raw.errw.take())

	out, err = js.do("get", "k")
	require.NoError(t, err)
	var item struct {
		Key     string
		Value   string
		Version uint64
	}
	require.NoError(t, json.Unmarshal([]byte(out), &item), out)
	assert.Equal(t, "k", item.Key)
	assert.Equal(t, "line one\nline two", item.Value)
	assert.NotZero(t, item.Version)
	_, err = js.do("set", "bin", "\xff\xfe")
	require.NoError(t, err)
	out, err = js.do("get", "bin")
	require.NoError(t, err)
	assert.Contains(t, out, `"value_base64":"//4="`, "a value that is not UTF-8 is base64")
	out, err = js.do("get", "missing")
	require.NoError(t, err)
	assert.JSONEq(t, `{"key":"missing","value":null}`, out)
	_, err = js.do("add", "k", "v")
	require.Error(t, err)
	js.print.printError("", err)
	assert.Contains(t, js.out.take(), `"kind":"exists"`)
	assert.Empty(t, js.errw.String(), "with -json nothing goes to stderr")
}

func TestWatchPrintsChanges(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{})
	tc := newTestCtl(t, config{addr: d.Addr().String()}, formatText)
	writer, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer writer.Close()

	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- tc.exec(ctx, []string{"watch", "user:*"}) }()
	tc.out.waitFor(t, "watching")
	_, err = writer.Set(context.Background(), "user:1", []byte("alice"))
	require.NoError(t, err)
	require.NoError(t, writer.Delete(context.Background(), "user:1"))
	tc.out.waitFor(t, "delete user:1")
	cancel(errInterrupted) // as Ctrl-C does
	require.NoError(t, <-done, "Ctrl-C is how a watch ends")
	assert.Contains(t, tc.out.String(), "set user:1 = alice (version ")
	assert.Contains(t, tc.out.String(), "delete user:1 (version ")
}

// TestClusterMode: -cluster with a static list of two nodes: data commands go to each key's
// owner, nodes and owner answer, and the per-node commands say to ask one node.
func TestClusterMode(t *testing.T) {
	var addrs []string
	for range 2 {
		addrs = append(addrs, testdaemon.Start(t, daemon.Config{}).Addr().String())
	}
	tc := newTestCtl(t, config{cluster: strings.Join(addrs, ",")}, formatText)
	out, err := tc.do("nodes")
	require.NoError(t, err)
	assert.ElementsMatch(t, addrs, strings.Fields(out))
	out, err = tc.do("owner", "k")
	require.NoError(t, err)
	owner := strings.TrimSpace(out)
	assert.Contains(t, addrs, owner)
	_, err = tc.do("set", "k", "v")
	require.NoError(t, err)
	out, err = tc.do("get", "k")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "v\n"))
	one, err := client.Dial(owner) // the owner has it; the stores are separate, so only the owner
	require.NoError(t, err)
	defer one.Close()
	it, err := one.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
	_, err = tc.do("stats")
	assert.ErrorContains(t, err, "ask one node")
	assert.Equal(t, 2, exitCode(err))
}

// syncBuffer is a bytes.Buffer safe for concurrent use, which tells waiters when it grows.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// take returns what was written and empties the buffer.
func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// waitFor waits until the buffer holds want n times (n defaults to 1), or fails the test
// after a generous deadline.
func (s *syncBuffer) waitFor(tb testing.TB, want string, n ...int) {
	tb.Helper()
	count := 1
	if len(n) > 0 {
		count = n[0]
	}
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		if strings.Count(s.b.String(), want) >= count {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("never saw %q %d times in:\n%s", want, count, s.String())
		}
	}
}
