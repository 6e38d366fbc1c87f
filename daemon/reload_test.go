package daemon

import (
	"bytes"
	"context"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
)

// TestSIGHUPReloadsAndNeverStops (#27 item 4): SIGHUP reloads the log level, the log format and
// the auth tokens from the -config file, says so, and the daemon goes on serving; a file that
// does not parse changes nothing and ends nothing. (Before, SIGHUP ended the process: this test's
// own.)
func TestSIGHUPReloadsAndNeverStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	file := writeFile(t, "log-format = \"json\"\nauth-tokens = [\"old\"]\n")
	logs := newLogLines(t)
	exit := make(chan int, 1)
	go func() {
		exit <- Run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "off", "-data-dir", t.TempDir(),
			"-config", file}, io.Discard, logs.w, nil)
		logs.w.Close()
	}()
	addr := logs.await(t, "pipecached listening")["addr"].(string)
	tctx, tcancel := context.WithTimeout(ctx, pctest.Timeout)
	defer tcancel()
	old, err := client.Dial(addr, client.WithToken("old"))
	require.NoError(t, err)
	defer old.Close()

	require.NoError(t, os.WriteFile(file, []byte("log-format = \"json\"\nlog-level = \"debug\"\nauth-tokens = [\"new\"]\n"), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	line := logs.await(t, "config reloaded")
	assert.Equal(t, "debug", line["log_level"])
	assert.Equal(t, float64(1), line["auth_tokens"])

	require.NoError(t, old.Ping(tctx), "a session accepted before the reload stays")
	_, err = client.Dial(addr, client.WithToken("old"), client.WithDialTimeout(pctest.Timeout))
	assert.ErrorIs(t, err, client.ErrUnauthorized, "the old token is no longer accepted")
	c, err := client.Dial(addr, client.WithToken("new"), client.WithDialTimeout(pctest.Timeout))
	require.NoError(t, err, "the new token is accepted")
	c.Close()

	require.NoError(t, os.WriteFile(file, []byte("log-level = \"loud\"\n"), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	bad := logs.await(t, "SIGHUP: config not reloaded; the daemon goes on as it was")
	assert.Contains(t, bad["err"], "-log-level")
	require.NoError(t, old.Ping(tctx), "a bad file ends nothing")
	_, err = client.Dial(addr, client.WithToken("old"), client.WithDialTimeout(pctest.Timeout))
	assert.ErrorIs(t, err, client.ErrUnauthorized, "a bad file changes nothing")

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code)
	case <-time.After(pctest.Timeout):
		t.Fatal("run did not return")
	}
}

// TestReloadKeepsWhatTheCommandLineSet: a reloadable setting given on the command line or in
// the environment keeps its value, as at start (they win over the file).
func TestReloadKeepsWhatTheCommandLineSet(t *testing.T) {
	file := writeFile(t, "log-level = \"warn\"\nauth-tokens = [\"a\"]\n")
	t.Setenv("PIPECACHE_LOG_FORMAT", "json")
	cfg, err := parseConfig([]string{"-config", file, "-auth-tokens", "cli"}, io.Discard)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, []byte("log-level = \"error\"\nlog-format = \"text\"\nauth-tokens = [\"b\"]\n"), 0o600))
	next, tokens, err := cfg.reload()
	require.NoError(t, err)
	assert.Equal(t, "error", next.logLevel, "from the file")
	assert.Equal(t, "json", next.logFormat, "the environment's")
	assert.Equal(t, []string{"cli"}, tokens, "the command line's")

	_, _, err = (&config{}).reload()
	assert.ErrorIs(t, err, errNoConfigFile)
}

// TestLogFormatSwitchReachesDerivedLoggers: a logger made With attributes before a format
// change writes in the new format after it, with its attributes.
func TestLogFormatSwitchReachesDerivedLoggers(t *testing.T) {
	var out bytes.Buffer // one goroutine logs
	logs, err := newLogger(&config{logLevel: "info", logFormat: "text"}, &out)
	require.NoError(t, err)
	stage := logs.log.With("stage", "cacheprc")
	stage.Info("before")
	require.NoError(t, logs.set("info", "json"))
	stage.Info("after")
	stage.Debug("hidden")
	require.NoError(t, logs.set("debug", "json"))
	stage.Debug("shown")
	got := out.String()
	assert.Contains(t, got, `msg=before stage=cacheprc`)
	assert.Contains(t, got, `"msg":"after","stage":"cacheprc"`)
	assert.NotContains(t, got, "hidden")
	assert.Contains(t, got, `"msg":"shown","stage":"cacheprc"`)
}
