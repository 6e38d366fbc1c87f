package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/bench"
)

// TestFlagsReachOpen: the connection flags end up in Open's options, as well as in the
// workload's config for the report.
func TestFlagsReachOpen(t *testing.T) {
	f, err := parseFlags([]string{"-server", "redis", "-name", "redis-aof", "-sessions", "7", "-shared", "-token", "s3cret",
		"-dial-attempts", "9", "-dial-backoff", "5ms", "-dial-deadline", "3s", "-metrics", "http://127.0.0.1:1/metrics"})
	require.NoError(t, err)
	assert.Equal(t, bench.Options{Sessions: 7, Shared: true, Token: "s3cret",
		Dial: bench.DialPolicy{Attempts: 9, Backoff: 5 * time.Millisecond, Deadline: 3 * time.Second}}, f.open)
	assert.True(t, f.cfg.Shared)
	assert.Equal(t, "redis-aof", f.cfg.Name)
	assert.Equal(t, "s3cret", f.cfg.Token)
	assert.Equal(t, "http://127.0.0.1:1/metrics", f.cfg.MetricsURL)
}

// TestSummarizeFiles: both tables read a results file; a missing or broken file is exit code 1.
func TestSummarizeFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "results.jsonl")
	line, err := json.Marshal(bench.Labelled{Workload: "5%", Result: bench.Result{Server: "pipecache", InFlight: 1, OpsPerSec: 10},
		Loss: &bench.LossCheck{Pattern: "5%", Random: 5, Seen: 1000, Dropped: 50}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(good, append(line, '\n'), 0o600))
	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("{\n"), 0o600))
	assert.Equal(t, 0, summarize(good, bench.SummarizeLoss))
	assert.Equal(t, 0, summarize(good, bench.Summarize))
	assert.Equal(t, 1, summarize(bad, bench.Summarize))
	assert.Equal(t, 1, summarize(filepath.Join(dir, "none"), bench.Summarize))
}

// TestIdleFlags: the idle-sessions flags, and the shared ones they take (-addr, -token, -pid,
// -duration), end up in the idle run's config; a bad source list is an error.
func TestIdleFlags(t *testing.T) {
	f, err := parseFlags([]string{"-idle-sessions", "1000", "-heartbeat", "20s", "-rate", "1500", "-source-ips", "127.0.1.1-127.0.1.3",
		"-sockets", "2", "-storm-at", "1m", "-storm", "500", "-storm-rate", "5000", "-addr", "127.0.0.1:7171", "-token", "t",
		"-pid", "42", "-duration", "5m", "-goodbye=false", "-hello-size", "300"})
	require.NoError(t, err)
	c := f.idle.cfg
	assert.Equal(t, 1000, c.Sessions)
	assert.Equal(t, 20*time.Second, c.Heartbeat)
	assert.Equal(t, 1500.0, c.Rate)
	assert.Len(t, c.SourceIPs, 3)
	assert.Equal(t, 2, c.Sockets)
	assert.Equal(t, time.Minute, c.StormAt)
	assert.Equal(t, 500, c.Storm)
	assert.Equal(t, 5000.0, c.StormRate)
	assert.Equal(t, "127.0.0.1:7171", c.Addr)
	assert.Equal(t, "t", c.Token)
	assert.Equal(t, 42, c.PID)
	assert.Equal(t, 5*time.Minute, c.Duration)
	assert.False(t, c.Goodbye)
	assert.True(t, c.ServerStats)
	assert.Equal(t, 300, c.HelloSize)

	_, err = parseFlags([]string{"-idle-sessions", "10", "-source-ips", "127.0.1.9-127.0.1.1"})
	assert.ErrorIs(t, err, bench.ErrBadSourceIPs)
	assert.Equal(t, 2, runIdle(context.Background(), &flags{idle: idleFlags{cfg: bench.IdleConfig{Sessions: 10}}}), "no duration: a usage error")
}
