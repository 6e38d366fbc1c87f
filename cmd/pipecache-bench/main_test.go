package main

import (
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
