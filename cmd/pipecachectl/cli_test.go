package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// The tests in this file run the pipecachectl binary as a user would: arguments, stdin,
// environment; then stdout, stderr and the exit code.

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ctlBinary builds pipecachectl once per test run (with -race if the tests have it).
func ctlBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "pipecachectl-test")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "pipecachectl")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + ": " + string(out))
		}
	})
	require.NoError(tb, buildErr)
	return binPath
}

// ctlEnv is a clean environment for the binary: no PIPECACHE_* from the caller's, a home of
// its own (for the history file), plus extra.
func ctlEnv(tb testing.TB, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIPECACHE_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "HOME="+tb.TempDir()), extra...)
}

// ran is one run of the binary.
type ran struct {
	stdout, stderr string
	code           int
}

// runCtl runs the binary with args, stdin piped from the string, and extra environment.
func runCtl(tb testing.TB, stdin string, env []string, args ...string) ran {
	tb.Helper()
	cmd := exec.Command(ctlBinary(tb), args...)
	cmd.Env = ctlEnv(tb, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := ran{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		tb.Fatalf("pipecachectl %v: %v", args, err)
	}
	tb.Logf("pipecachectl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	return r
}

// closedAddr returns a loopback UDP address nothing listens on (it was free a moment ago).
func closedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	addr := l.LocalAddr().String()
	require.NoError(tb, l.Close())
	return addr
}

// TestHelpAndUsage: -h and help list every command with its arguments and need no server;
// help CMD describes one; unknown flags and commands exit 2.
func TestHelpAndUsage(t *testing.T) {
	nobody := closedAddr(t)
	r := runCtl(t, "", nil, "-addr", nobody, "-h")
	assert.Equal(t, 0, r.code)
	for _, c := range commands {
		assert.Contains(t, r.stdout, synopsis(c), "-h lists %s", c.name)
	}
	for _, want := range []string{"-addr", "-timeout", "-raw", "-json", "-x", "-version", "Exit codes:", "PIPECACHE_CLUSTER"} {
		assert.Contains(t, r.stdout, want)
	}
	assert.Empty(t, r.stderr)

	r = runCtl(t, "", nil, "-addr", nobody, "help")
	assert.Equal(t, 0, r.code, "help needs no server")
	assert.Contains(t, r.stdout, "cas KEY VALUE VERSION [TTL]")
	r = runCtl(t, "", nil, "-addr", nobody, "help", "touch")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "touch KEY TTL")
	assert.Contains(t, r.stdout, "TTL is seconds (30) or a Go duration")

	usage := []struct {
		args   []string
		stderr string
	}{
		{[]string{"-frobnicate"}, "flag provided but not defined: -frobnicate"},
		{[]string{"-timeout", "soon", "ping"}, "invalid value"},
		{[]string{"-raw", "-json", "get", "k"}, "-raw and -json"},
		{[]string{"-addr", nobody, "-cluster", nobody, "get", "k"}, "give one"},
		{[]string{"-x"}, "-x needs a command"},
		{[]string{"-addr", nobody, "help", "frobnicate"}, `no command "frobnicate"`},
		{[]string{"-addr", nobody, "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"-addr", nobody, "get"}, "get: wrong number of arguments: get KEY"},
	}
	for _, u := range usage {
		r := runCtl(t, "", nil, u.args...)
		assert.Equal(t, 2, r.code, "%v", u.args)
		assert.Contains(t, r.stderr, u.stderr, "%v", u.args)
	}
}

// TestVersion: -version says what the binary's build information holds (go version -m).
func TestVersion(t *testing.T) {
	r := runCtl(t, "", nil, "-version")
	assert.Equal(t, 0, r.code)
	assert.Regexp(t, `^pipecachectl version \S+, .*go1\.\S+ \S+/\S+\n$`, r.stdout)
	info, err := exec.Command("go", "version", "-m", ctlBinary(t)).Output()
	require.NoError(t, err)
	if m := regexp.MustCompile(`vcs\.revision=(\w+)`).FindSubmatch(info); m != nil {
		assert.Contains(t, r.stdout, "revision "+string(m[1]))
	} else {
		assert.NotContains(t, r.stdout, "revision", "no VCS information stamped (-buildvcs=false, or a git worktree)")
	}
}

// TestNothingListening: a server that is not there is said to be not there (connection
// refused), exit 1; not a timeout.
func TestNothingListening(t *testing.T) {
	addr := closedAddr(t)
	r := runCtl(t, "", nil, "-addr", addr, "-timeout", "1m", "get", "k")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "connection refused: nothing listening at "+addr)
	assert.NotContains(t, r.stderr, "timeout")
	r = runCtl(t, "", nil, "-addr", addr, "-json", "ping")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, `"kind":"unavailable"`)
}

// TestDialTimeout: a socket that receives and never answers (no refusal either) fails the
// command with a timeout.
func TestDialTimeout(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	r := runCtl(t, "", nil, "-addr", silent.LocalAddr().String(), "-timeout", "300ms", "ping")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no answer")
	assert.Contains(t, r.stderr, "timeout")
}

func TestOneShotCommands(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	env := []string{"PIPECACHE_ADDR=" + addr}
	steps := []struct {
		stdin  string
		args   []string
		code   int
		stdout string // exactly, if stdoutRe is empty
		stderr string // contained
	}{
		{args: []string{"set", "user:1", "alice", "1h"}, stdout: "OK (version 1)\n"},
		{args: []string{"get", "user:1"}, stdout: "alice\n(version 1)\n"},
		{args: []string{"get", "user:2"}, stdout: "(nil)\n"},
		{args: []string{"add", "user:1", "bob"}, code: 1, stderr: "exists"},
		{args: []string{"-raw", "get", "user:1"}, stdout: "alice", stderr: "(version 1)"},
		{args: []string{"-json", "get", "user:1"}, stdout: `{"key":"user:1","value":"alice","version":1}` + "\n"},
		{stdin: "two\nlines\n", args: []string{"-x", "set", "blob", "30"}, stdout: "OK (version 2)\n"},
		{args: []string{"-raw", "get", "blob"}, stdout: "two\nlines\n"},
		{stdin: "blob", args: []string{"-x", "-raw", "get"}, stdout: "two\nlines\n"},
		{args: []string{"set", "n", "1"}, stdout: "OK (version 3)\n"},
		{args: []string{"incr", "n", "41"}, stdout: "(integer) 42\n"},
		{args: []string{"incr", "user:1"}, code: 1, stderr: "not_counter"},
		{args: []string{"set", "n", "1", "forever"}, code: 2, stderr: `TTL "forever"`},
		{args: []string{"del", "n"}, stdout: "OK\n"},
		{args: []string{"del", "n"}, stdout: "(nil)\n"},
	}
	for _, s := range steps {
		r := runCtl(t, s.stdin, env, s.args...)
		assert.Equal(t, s.code, r.code, "%v", s.args)
		if s.code == 0 {
			assert.Equal(t, s.stdout, r.stdout, "%v", s.args)
		}
		assert.Contains(t, r.stderr, s.stderr, "%v", s.args)
	}
}

// TestScriptFromStdin: commands piped to stdin run one per line, quoted as in redis-cli, with
// no prompt; a failed line is reported with its number, the rest still run, and the exit code
// says it failed.
func TestScriptFromStdin(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	script := strings.Join([]string{
		`set g "hello world"`,
		`get g`,
		`set q 'it\'s' 1m`,
		`get q`,
		`add g again`, // line 5 fails: exists
		`set esc "tab\there\x21"`,
		`get esc`,
		``,
		`replace missing x`, // line 9 fails: not found
		`get nothing`,
	}, "\n")
	home := t.TempDir()
	r := runCtl(t, script, []string{"HOME=" + home}, "-addr", addr)
	assert.Equal(t, 1, r.code, "a failed command sets the exit code")
	assert.NoFileExists(t, filepath.Join(home, ".pipecachectl_history"), "no history without a terminal")
	assert.Equal(t, "OK (version 1)\nhello world\n(version 1)\nOK (version 2)\nit's\n(version 2)\n"+
		"OK (version 3)\ntab\there!\n(version 3)\n(nil)\n", r.stdout, "no prompts, only results")
	assert.Contains(t, r.stderr, "line 5: ")
	assert.Contains(t, r.stderr, "line 9: ")
	assert.Equal(t, 2, strings.Count(r.stderr, "\n"), "one line per failure")

	r = runCtl(t, "get g\nset broken \"quote\n", nil, "-addr", addr)
	assert.Equal(t, 2, r.code, "a line that does not parse is a usage error")
	assert.Contains(t, r.stderr, "line 2: unbalanced quotes")

	r = runCtl(t, "get g\nquit\nget g\n", nil, "-addr", addr, "-raw")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "hello world", r.stdout, "quit ends the script")

	r = runCtl(t, "set j 1\nincr j\nget nope\nfrob\n", nil, "-addr", addr, "-json")
	assert.Equal(t, 2, r.code)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 4, "one JSON line per command, errors included")
	assert.JSONEq(t, `{"key":"j","value":2}`, lines[1])
	assert.JSONEq(t, `{"key":"nope","value":null}`, lines[2])
	assert.Contains(t, lines[3], `"kind":"usage"`)
}

// TestClusterEnvironmentAndExplicitAddr: PIPECACHE_CLUSTER makes the commands go to the
// cluster, unless -addr is given on the command line.
func TestClusterEnvironmentAndExplicitAddr(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	env := []string{"PIPECACHE_CLUSTER=" + addr}
	r := runCtl(t, "", env, "nodes")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, addr+"\n", r.stdout)
	r = runCtl(t, "", env, "ping")
	assert.Equal(t, 2, r.code, "ping asks one node, and the environment names a cluster")
	r = runCtl(t, "", env, "-addr", addr, "ping")
	assert.Equal(t, 0, r.code, "an explicit -addr wins over PIPECACHE_CLUSTER")
	assert.Equal(t, "PONG\n", r.stdout)
}
