package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/buildinfo"
	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
)

func writeFile(tb testing.TB, text string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "pipecached.toml")
	require.NoError(tb, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// TestConfigPrecedence: a flag wins over its environment variable, which wins over the
// config file, which wins over the default.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
listen = "127.0.0.1:9001"   # only in the file
max-key = 100               # file and environment
memory-mb = 10              # file, environment and flag
auth-tokens = ["a", "b"]
stale-reads = true
store-timeout = "750ms"
`)
	t.Setenv("PIPECACHE_MAX_KEY", "200")
	t.Setenv("PIPECACHE_MEMORY_MB", "20")
	cfg, err := parseConfig([]string{"-config", file, "-memory-mb", "30"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9001", cfg.daemon.Incoming.Transport.Addr, "file over default")
	assert.Equal(t, 200, cfg.daemon.MaxKey, "environment over file")
	assert.Equal(t, int64(30), cfg.memoryMB, "flag over environment")
	assert.Equal(t, int64(30<<20), cfg.daemon.Cache.Memory)
	assert.Equal(t, "data", cfg.daemon.Store, "default when nobody sets it")
	assert.Equal(t, "a,b", cfg.tokens, "a list is comma-separated")
	assert.True(t, cfg.daemon.Cache.StaleReads)
	assert.Equal(t, 750*time.Millisecond, cfg.daemon.Cache.StoreTimeout)
}

func TestConfigFileFromTheEnvironment(t *testing.T) {
	t.Setenv("PIPECACHE_CONFIG", writeFile(t, `data-dir = "/srv/cache"`))
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/srv/cache", cfg.daemon.Store)
}

func TestConfigFileErrorsAreClear(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"unknown key", `listne = "x"`, `"listne" not defined`},
		{"table", "[cache]\nmemory-mb = 1", "cache"},
		{"list of numbers", "auth-tokens = [1, 2]", "only strings"},
		{"bad duration", `heartbeat = 2`, "heartbeat"},
		{"not TOML", `listen: "x"`, "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]string{"-config", writeFile(t, tt.file)}, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := parseConfig([]string{"-config", filepath.Join(t.TempDir(), "missing.toml")}, io.Discard)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestExampleConfigParses keeps deploy/pipecached.toml in step with the flags.
func TestExampleConfigParses(t *testing.T) {
	cfg, err := parseConfig([]string{"-config", "../deploy/pipecached.toml"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/pipecache", cfg.daemon.Store)
	assert.Equal(t, "127.0.0.1:9070", cfg.admin)
	assert.Equal(t, "json", cfg.logFormat)
	assert.Equal(t, int64(256<<20), cfg.daemon.Cache.Memory)
	assert.Equal(t, 10*time.Millisecond, cfg.daemon.Cache.ProcBudget)
	assert.Equal(t, nameservice.FsyncAlways, cfg.daemon.Fsync)
}

// TestProcBudgetFlags: -proc-budget 0 is no time budget (the stage's zero is its default of
// 10 ms), and a negative budget is a usage error.
func TestProcBudgetFlags(t *testing.T) {
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Millisecond, cfg.daemon.Cache.ProcBudget, "the default")
	assert.Zero(t, cfg.daemon.Cache.ProcMaxSteps)
	cfg, err = parseConfig([]string{"-proc-budget", "0", "-proc-max-steps", "5000"}, io.Discard)
	require.NoError(t, err)
	assert.Negative(t, cfg.daemon.Cache.ProcBudget, "0 on the command line: none")
	assert.Equal(t, int64(5000), cfg.daemon.Cache.ProcMaxSteps)
	for _, args := range [][]string{{"-proc-budget", "-1ms"}, {"-proc-max-steps", "-1"}} {
		_, err = parseConfig(args, io.Discard)
		assert.ErrorContains(t, err, "not negative", "%q", args)
	}
}

func TestAdminAddr(t *testing.T) {
	tests := []struct {
		admin, listen, want string
	}{
		{"127.0.0.1", "127.0.0.1:7070", "127.0.0.1:7070"},
		{"127.0.0.1", "0.0.0.0:7071", "127.0.0.1:7071"},
		{"127.0.0.1", "127.0.0.1:0", "127.0.0.1:0"},
		{"::1", "[::1]:7070", "[::1]:7070"},
		{"[::1]", "127.0.0.1:7070", "[::1]:7070"},
		{"localhost", ":7070", "localhost:7070"},
		{"127.0.0.1:9100", "127.0.0.1:7070", "127.0.0.1:9100"},
		{":9100", "127.0.0.1:7070", ":9100"},
		{"", "127.0.0.1:7070", ""},
		{"off", "127.0.0.1:7070", ""},
	}
	for _, tt := range tests {
		got, err := adminAddr(tt.admin, tt.listen)
		require.NoError(t, err, "%q %q", tt.admin, tt.listen)
		assert.Equal(t, tt.want, got, "-admin %q -listen %q", tt.admin, tt.listen)
	}
	_, err := adminAddr("127.0.0.1", "no-port")
	assert.Error(t, err)
}

func TestHelpListsEveryFlagAndItsVariable(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, Run(context.Background(), []string{"-h"}, io.Discard, &out, nil))
	help := out.String()
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		assert.Contains(t, help, "  -"+f.Name+" ", f.Name)
		assert.Contains(t, help, "$"+envName(f.Name), f.Name)
	})
	assert.Contains(t, help, "$PIPECACHE_DATA_DIR")
	assert.Contains(t, help, `(default "127.0.0.1:7070")`)
}

// TestREADMENamesEveryFlag: README's list of the daemon's flags is complete.
func TestREADMENamesEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		assert.Contains(t, string(readme), "`-"+f.Name+"`", "README.md does not name -%s", f.Name)
	})
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, Run(context.Background(), []string{"-version"}, &out, io.Discard, nil))
	assert.Equal(t, "pipecached "+buildinfo.Read().String()+"\n", out.String())
}

func TestBadUsageExits2(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"}, {"stray-argument"}, {"-log-format", "xml"}, {"-log-level", "loud"},
		{"-max-key", "many"},
	} {
		var out bytes.Buffer
		assert.Equal(t, 2, Run(context.Background(), args, io.Discard, &out, nil), "%q", args)
		assert.Contains(t, out.String(), "pipecached: ", "%q", args)
	}
}

// logLines collects what the daemon logs, line by line, as it comes.
type logLines struct {
	w     *io.PipeWriter
	lines chan string
}

func newLogLines(tb testing.TB) *logLines {
	r, w := io.Pipe()
	l := &logLines{w: w, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			tb.Log(sc.Text())
			l.lines <- sc.Text()
		}
		close(l.lines)
	}()
	return l
}

// await returns the JSON log line whose msg is msg, checking that every line before it is JSON.
func (l *logLines) await(tb testing.TB, msg string) map[string]any {
	tb.Helper()
	timeout := time.After(pctest.Timeout)
	for {
		select {
		case line, ok := <-l.lines:
			require.True(tb, ok, "the log ended before %q", msg)
			var m map[string]any
			require.NoError(tb, json.Unmarshal([]byte(line), &m), "not a JSON line: %s", line)
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			tb.Fatalf("no %q in the log", msg)
		}
	}
}

// TestRunServesTheAdminEndpoint runs pipecached as main does, with JSON logs and the admin
// endpoint on a free port, uses it, scrapes it, and stops it.
func TestRunServesTheAdminEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := newLogLines(t)
	exit := make(chan int, 1)
	go func() {
		exit <- Run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-data-dir", t.TempDir(),
			"-log-format", "json"}, io.Discard, logs.w, nil)
		logs.w.Close()
	}()
	adminURL := "http://" + logs.await(t, "admin endpoint listening")["addr"].(string)
	addr := logs.await(t, "pipecached listening")["addr"].(string)

	c, err := client.Dial(addr)
	require.NoError(t, err)
	defer c.Close()
	tctx, tcancel := context.WithTimeout(ctx, pctest.Timeout)
	defer tcancel()
	_, err = c.Set(tctx, "k", []byte("v"))
	require.NoError(t, err)

	resp, err := http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, float64(1), fams["pipecache_cache_sets_total"].Metric[0].Counter.GetValue())
	assert.Equal(t, float64(1), fams["pipecache_store_commit_writes"].Metric[0].Histogram.GetSampleSum())
	resp, err = http.Get(adminURL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	logs.await(t, "pipecached stopped")
	select {
	case code := <-exit:
		assert.Equal(t, 0, code)
	case <-time.After(pctest.Timeout):
		t.Fatal("run did not return")
	}
	_, err = http.Get(adminURL + "/healthz")
	assert.Error(t, err, "the admin endpoint stops with the daemon")
}

// TestStartRefusesWhatIsTheDaemons: a stage's setting that the daemon gives every stage from
// one of its own is refused, not silently overwritten, and the error names the daemon's.
func TestStartRefusesWhatIsTheDaemons(t *testing.T) {
	tests := []struct {
		name, want string
		set        func(*Config)
	}{
		{"Cache.MaxKey", "Config.MaxKey", func(c *Config) { c.Cache.MaxKey = 100 }},
		{"Incoming.MaxValue", "Config.MaxValue", func(c *Config) { c.Incoming.MaxValue = 100 }},
		{"Cache.Processors", "Config.Processors", func(c *Config) { c.Cache.Processors = processor.NewRegistry() }},
		{"Sessions.Logger", "Config.Logger", func(c *Config) { c.Sessions.Logger = slog.Default() }},
		{"Incoming.Pipeline", "wiring", func(c *Config) { c.Incoming.Pipeline = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Store: t.TempDir()}
			cfg.Incoming.Transport.Addr = "127.0.0.1:0"
			tt.set(&cfg)
			d, err := Start(context.Background(), cfg)
			if err == nil {
				d.Stop(context.Background())
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestLimitsReachEveryStage: MaxKey and MaxValue, set once, bound what Incoming accepts and
// what CachePrc lets a processor write, and the daemon reports them.
func TestLimitsReachEveryStage(t *testing.T) {
	const maxValue = 2048 // a hello (padded to about 1 KB) must fit
	procs := processor.Default()
	require.NoError(t, procs.Register("grow", func(in processor.Input, out *processor.Output) error {
		n, err := strconv.Atoi(string(in.Args))
		if err != nil {
			return errors.Join(processor.ErrBadArgs, err)
		}
		out.Action, out.Value = processor.Set, append(out.Value, bytes.Repeat([]byte("g"), n)...)
		return nil
	}))
	cfg := Config{Store: t.TempDir(), MaxKey: 8, MaxValue: maxValue, Processors: procs, Logger: slog.New(slog.DiscardHandler)}
	cfg.Incoming.Transport.Addr = "127.0.0.1:0"
	d, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	defer d.Stop(context.Background())
	assert.Equal(t, 8, d.Snapshot().Limits.MaxKey)
	assert.Equal(t, maxValue, d.Snapshot().Limits.MaxValue)

	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pctest.Timeout)
	defer cancel()
	_, err = c.Set(ctx, "123456789", []byte("v"))
	assert.ErrorIs(t, err, client.ErrTooLarge, "Incoming: a key over MaxKey")
	_, err = c.Set(ctx, "k", bytes.Repeat([]byte("v"), maxValue+1))
	assert.ErrorIs(t, err, client.ErrTooLarge, "Incoming: a value over MaxValue")
	_, _, err = c.Exec(ctx, "k", "grow", []byte(strconv.Itoa(maxValue+1)))
	assert.ErrorIs(t, err, client.ErrTooLarge, "CachePrc: a processor's value over MaxValue")
	_, _, err = c.Exec(ctx, "k", "grow", []byte(strconv.Itoa(maxValue)))
	assert.NoError(t, err, "a processor's value of MaxValue")
}
