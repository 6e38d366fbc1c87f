package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/processor"
)

func call(tb testing.TB, value []byte, args string, now time.Time) (processor.Output, error) {
	tb.Helper()
	fn, ok := func() (processor.Func, bool) {
		procs, err := processors()
		require.NoError(tb, err)
		return procs.Lookup("ratelimit")
	}()
	require.True(tb, ok)
	var out processor.Output
	_, err := processor.Call(fn, processor.Input{Value: value, Exists: value != nil, Args: []byte(args), Now: now},
		processor.Limits{}, &out)
	return out, err
}

func TestRateLimit(t *testing.T) {
	t0 := time.UnixMilli(1_000_000)
	tests := []struct {
		name, value, args string
		now               time.Time
		action            processor.Action
		newValue, result  string
		err               error
	}{
		{"first call", "", "3 1m", t0, processor.Set, "1000000 1", "ok 2", nil},
		{"in the window", "1000000 2", "3 1m", t0.Add(time.Second), processor.Set, "1000000 3", "ok 0", nil},
		{"over the limit", "1000000 3", "3 1m", t0.Add(10 * time.Second), processor.Unchanged, "", "limited 50000", nil},
		{"a new window", "1000000 3", "3 1m", t0.Add(time.Minute), processor.Set, "1060000 1", "ok 2", nil},
		{"a clock that went back", "1000000 3", "3 1m", t0.Add(-time.Second), processor.Set, "999000 1", "ok 2", nil},
		{"no window", "", "3", t0, 0, "", "", processor.ErrBadArgs},
		{"zero limit", "", "0 1m", t0, 0, "", "", processor.ErrBadArgs},
		{"not a rate limit's value", "hello", "3 1m", t0, 0, "", "", processor.ErrWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var value []byte
			if tt.value != "" {
				value = []byte(tt.value)
			}
			out, err := call(t, value, tt.args, tt.now)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.action, out.Action)
			assert.Equal(t, tt.newValue, string(out.Value))
			assert.Equal(t, tt.result, string(out.Result))
		})
	}
}

// FuzzRateLimit: whatever the value and the arguments, no panic, and a value it writes is one
// it reads back.
func FuzzRateLimit(f *testing.F) {
	f.Add([]byte("1000000 2"), []byte("3 1m"), int64(1_000_500))
	f.Add([]byte(""), []byte("1 1ms"), int64(0))
	f.Add([]byte("-5 9223372036854775807"), []byte("9223372036854775807 2562047h"), int64(-1))
	f.Fuzz(func(t *testing.T, value, args []byte, nowMs int64) {
		out, err := call(t, value, string(args), time.UnixMilli(nowMs))
		if err != nil || out.Action != processor.Set {
			return
		}
		_, _, err = parseWindow(out.Value)
		require.NoError(t, err, "wrote %q", out.Value)
	})
}

// TestCustomDaemon runs the custom daemon as main does (daemon.Run with its processors) and
// uses its processor through the SDK.
func TestCustomDaemon(t *testing.T) {
	procs, err := processors()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- daemon.Run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "off", "-data-dir", t.TempDir(),
			"-log-format", "json", "-proc-budget", "0"}, io.Discard, w, procs) // no time budget: it is wall-clock
		w.Close()
	}()
	started := awaitLog(t, r, "pipecached listening")
	assert.Contains(t, started["processors"], "ratelimit")
	go io.Copy(io.Discard, r) // the rest of the log

	c, err := client.Dial(started["addr"].(string))
	require.NoError(t, err)
	defer c.Close()
	cctx, ccancel := context.WithTimeout(ctx, pctest.Timeout)
	defer ccancel()
	for _, want := range []string{"ok 2", "ok 1", "ok 0", "limited"} {
		res, _, err := c.Exec(cctx, "login:alice", "ratelimit", []byte("3 1h"))
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(res), want), "%q, want %q", res, want)
	}
	_, _, err = c.Exec(cctx, "login:alice", "ratelimit", []byte("three an hour"))
	assert.ErrorIs(t, err, client.ErrBadRequest)
	it, err := c.Get(cctx, "login:alice")
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(it.Value), " 3"), "the window's value, readable with a get: %q", it.Value)
	res, _, err := c.Exec(cctx, "board", "zset", processor.ZIncrArgs("alice", 1))
	require.NoError(t, err, "the built-ins are there too")
	score, err := processor.DecodeScore(res)
	require.NoError(t, err)
	assert.Equal(t, 1.0, score.Score)

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code)
	case <-time.After(pctest.Timeout):
		t.Fatal("the daemon did not stop")
	}
}

// awaitLog reads JSON log lines from r until one whose msg is msg, and returns it.
func awaitLog(tb testing.TB, r io.Reader, msg string) map[string]any {
	tb.Helper()
	found := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
				found <- m
				return
			}
		}
		close(found)
	}()
	select {
	case m, ok := <-found:
		require.True(tb, ok, "the log ended before %q", msg)
		return m
	case <-time.After(pctest.Timeout):
		tb.Fatalf("no %q in the log", msg)
		return nil
	}
}
