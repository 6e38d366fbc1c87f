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
	"strings"
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
	"github.com/pipecache/pipecache/stages/loop"
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

// TestNoEnvironmentForVersionOrConfig (#27 item 5): what the process does and where its
// configuration is are the command line's alone. A stray PIPECACHE_VERSION (1 or a version
// string) must not turn a service into a command that prints its version, nor keep it from
// starting; PIPECACHE_CONFIG is not read.
func TestNoEnvironmentForVersionOrConfig(t *testing.T) {
	for _, v := range []string{"1", "true", "1.2.3"} {
		t.Setenv("PIPECACHE_VERSION", v)
		cfg, err := parseConfig(nil, io.Discard)
		require.NoError(t, err, "PIPECACHE_VERSION=%s", v)
		assert.False(t, cfg.version, "PIPECACHE_VERSION=%s", v)
	}
	t.Setenv("PIPECACHE_CONFIG", writeFile(t, `data-dir = "/srv/cache"`))
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "data", cfg.daemon.Store, "PIPECACHE_CONFIG is not read")

	var help bytes.Buffer
	require.Equal(t, 0, Run(context.Background(), []string{"-h"}, io.Discard, &help, nil))
	assert.NotContains(t, help.String(), "$PIPECACHE_VERSION")
	assert.NotContains(t, help.String(), "$PIPECACHE_CONFIG")
}

func TestConfigFileErrorsAreClear(t *testing.T) {
	// Each error names the line, the key, what the key takes and what it got (#27 item 9).
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "# comment\nlistne = \"x\"", []string{"line 2: listne", "no flag -listne"}},
		{"table", "listen = \"127.0.0.1:1\"\n[cache]\nmemory-mb = 1", []string{"line 2: cache", "a table"}},
		{"list of numbers", "auth-tokens = [1, 2]", []string{"line 1: auth-tokens", "only strings", "the integer 1"}},
		{"duration without a unit", "\n\nheartbeat = 2", []string{"line 3: heartbeat", "a duration", "the integer 2", `"2s"`}},
		{"string for an integer", `max-key = "many"`, []string{"line 1: max-key", "want an integer", `got "many"`}},
		{"integer for a string", `listen = 7070`, []string{"line 1: listen", "want a string", "the integer 7070"}},
		{"number for a boolean", `stale-reads = 1`, []string{"line 1: stale-reads", "want a boolean", "the integer 1"}},
		{"bad size", `push-memory = "lots"`, []string{"line 1: push-memory", "want a size", "not a size"}},
		{"not TOML", `listen: "x"`, []string{"config file", "line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]string{"-config", writeFile(t, tt.file)}, io.Discard)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "parse error")
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
		assert.Regexp(t, `\n  -`+f.Name+`[ \n]`, help, f.Name)
		if !noEnv[f.Name] {
			assert.Contains(t, help, "$"+envName(f.Name), f.Name)
		}
	})
	assert.Contains(t, help, "$PIPECACHE_DATA_DIR")
	assert.Contains(t, help, `(default "127.0.0.1:7070")`)
}

// TestHelpIsByPurposeInOneUnit (#27 item 9): -h groups the flags by purpose, in the order of
// flagGroups; sizes read in units (the default of -push-memory is 256MiB, not 268435456) and
// numbers are not quoted.
func TestHelpIsByPurposeInOneUnit(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, Run(context.Background(), []string{"-h"}, io.Discard, &out, nil))
	help := out.String()
	last := -1
	for _, g := range flagGroups {
		i := strings.Index(help, "\n"+g.title+":\n")
		require.Greater(t, i, last, "group %q missing or out of order", g.title)
		last = i
	}
	for _, want := range []string{"-push-memory size", "(default 256MiB)", "-pending-memory size", "(default 32MiB)",
		"-max-value size", "(default 1MiB)", "-push-bytes size", "(default 4MiB)", "-max-key n", "(default 250)"} {
		assert.Contains(t, help, want)
	}
	assert.NotContains(t, help, "268435456")
	assert.NotContains(t, help, `(default "250")`)
}

// TestEveryFlagIsInOneHelpGroup: a new flag must be placed in -h.
func TestEveryFlagIsInOneHelpGroup(t *testing.T) {
	seen := map[string]int{}
	for _, g := range flagGroups {
		for _, name := range g.flags {
			seen[name]++
		}
	}
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		assert.Equal(t, 1, seen[f.Name], "-%s in %d help groups", f.Name, seen[f.Name])
		delete(seen, f.Name)
	})
	assert.Empty(t, seen, "help groups name flags that do not exist")
}

// TestSizeFlagsTakeUnits: every size flag takes a plain number of bytes, as before, or a unit,
// on the command line, in the environment and in the file.
func TestSizeFlagsTakeUnits(t *testing.T) {
	t.Setenv("PIPECACHE_PUSH_BYTES", "512KiB")
	cfg, err := parseConfig([]string{"-config", writeFile(t, `push-memory = "1GiB"`+"\n"+`pending-memory = 1048576`),
		"-max-value", "2MiB"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2<<20, cfg.daemon.MaxValue)
	assert.Equal(t, int64(512<<10), cfg.daemon.Sessions.PushBytes)
	assert.Equal(t, int64(1<<30), cfg.daemon.Sessions.PushMemory)
	assert.Equal(t, int64(1<<20), cfg.daemon.Incoming.Transport.PendingMemory)
	_, err = parseConfig([]string{"-max-value", "3GiB"}, io.Discard)
	assert.ErrorContains(t, err, "too large")
}

// TestBadFlagIsOneLine (#27 item 9): an unknown flag says so and where to look, not the whole
// of -h.
func TestBadFlagIsOneLine(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 2, Run(context.Background(), []string{"-no-such-flag"}, io.Discard, &out, nil))
	assert.Equal(t, 1, strings.Count(out.String(), "\n"), "%s", out.String())
	assert.Contains(t, out.String(), "-no-such-flag")
	assert.Contains(t, out.String(), "pipecached -h")
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
		{"Cache.Loop", "Config.Loops", func(c *Config) {
			l, err := loop.New(loop.Config{Name: "mine"})
			require.NoError(t, err)
			t.Cleanup(func() { l.Stop(context.Background()) })
			c.Cache.Loop = l
		}},
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

// TestMemoryLimit (#23 item 14): the soft memory limit pipecached gives the Go runtime follows
// -memory-mb unless -memory-limit-mb says otherwise, and GOMEMLIMIT wins over both.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		gomemlimit string
		want       int64
	}{
		{nil, "", (256*5/4 + 128) << 20},
		{[]string{"-memory-mb", "1024"}, "", (1024*5/4 + 128) << 20},
		{[]string{"-memory-limit-mb", "700"}, "", 700 << 20},
		{[]string{"-memory-limit-mb", "-1"}, "", -1},
		{nil, "2GiB", -1},
	} {
		cfg, err := parseConfig(tc.args, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, tc.want, cfg.memoryLimit(tc.gomemlimit), "%v GOMEMLIMIT=%q", tc.args, tc.gomemlimit)
	}
}
