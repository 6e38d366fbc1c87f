package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/processor"
)

// startProcDaemon runs a daemon with the built-in processors and "upper", which stores and
// returns its arguments in upper case: a processor pipecachectl knows no text form of.
func startProcDaemon(tb testing.TB) *daemon.Daemon {
	tb.Helper()
	procs := processor.Default()
	require.NoError(tb, procs.Register("upper", func(in processor.Input, out *processor.Output) error {
		out.Action, out.Value = processor.Set, append(out.Value, bytes.ToUpper(in.Args)...)
		out.Result = append(out.Result, out.Value...)
		return nil
	}))
	return testdaemon.Start(tb, daemon.Config{Processors: procs})
}

// TestExec: exec KEY PROC ARGS... runs a built-in from its text form and prints its result as
// text, or a custom processor on its argument bytes; its mistakes are usage errors (exit 2),
// the server's refusals failures (exit 1).
func TestExec(t *testing.T) {
	env := []string{"PIPECACHE_ADDR=" + startProcDaemon(t).Addr().String()}
	steps := []struct {
		stdin  string
		args   []string
		code   int
		stdout string // exactly, when code is 0
		stderr string // contained
	}{
		{args: []string{"exec", "board", "zset", "incr", "5", "alice"}, stdout: "added 5\n(version 1)\n"},
		{args: []string{"exec", "board", "zset", "incr", "2.5", "alice"}, stdout: "updated 7.5\n(version 2)\n"},
		{args: []string{"exec", "board", "zset", "add", "9", "bob"}, stdout: "added 9\n(version 3)\n"},
		{args: []string{"exec", "board", "zset", "top", "10"}, stdout: "bob 9\nalice 7.5\n(version 3)\n"},
		{args: []string{"exec", "board", "zset", "revrank", "nobody"}, stdout: "(nil)\n(version 3)\n"},
		{args: []string{"-raw", "exec", "board", "zset", "top", "1"}, stdout: "bob 9\n", stderr: "(version 3)"},
		{args: []string{"-json", "exec", "board", "zset", "rank", "alice"},
			stdout: `{"key":"board","proc":"zset","result":["(integer) 0 (score 7.5)"],"version":3}` + "\n"},
		{args: []string{"exec", "profile", "hash", "set", "name", "ann", "lvl", "3"}, stdout: "(integer) 2\n(version 4)\n"},
		{args: []string{"exec", "profile", "hash", "get", "name", "age"}, stdout: "ann\n(nil)\n(version 4)\n"},
		{args: []string{"exec", "feed", "list", "lpush", "2", "a", "b", "c"}, stdout: "(integer) 2\n(version 5)\n"},
		{args: []string{"exec", "feed", "list", "range", "0", "-1"}, stdout: "c\nb\n(version 5)\n"},
		{args: []string{"exec", "k", "upper", "hello", "world"}, stdout: "HELLO WORLD\n(version 6)\n"},
		{stdin: "from stdin", args: []string{"-x", "-raw", "exec", "k", "upper"}, stdout: "FROM STDIN", stderr: "(version 7)"},
		{args: []string{"get", "k"}, stdout: "FROM STDIN\n(version 7)\n"},
		{args: []string{"exec", "board", "zset", "incr", "lots", "alice"}, code: 2, stderr: "exec zset:"},
		{args: []string{"exec", "board", "zset", "fly"}, code: 2, stderr: "no sub-command"},
		{args: []string{"exec", "board"}, code: 2, stderr: "wrong number of arguments"},
		{args: []string{"exec", "board", "nope", "x"}, code: 1, stderr: "unknown_processor"},
		{args: []string{"-json", "exec", "k", "zset", "card"}, code: 1, stdout: `"kind":"wrong_type"`},
		{args: []string{"exec", "board", "zset", "card"}, stdout: "(integer) 2\n(version 3)\n"},
		// several pairs at once, as Redis's ZADD (#27 item 8): the number added
		{args: []string{"-raw", "exec", "board2", "zset", "add", "7", "bob", "3", "carol"}, stdout: "(integer) 2\n", stderr: "(version"},
		{args: []string{"-raw", "exec", "board2", "zset", "add", "nx", "1", "bob", "4", "dee"}, stdout: "(integer) 1\n", stderr: "(version"},
		{args: []string{"-raw", "exec", "board2", "zset", "top", "3"}, stdout: "bob 7\ndee 4\ncarol 3\n", stderr: "(version"},
		{args: []string{"exec", "board2", "zset", "add", "7", "bob", "3"}, code: 2, stderr: "SCORE MEMBER [SCORE MEMBER...]"},
	}
	for _, s := range steps {
		r := runCtl(t, s.stdin, env, s.args...)
		assert.Equal(t, s.code, r.code, "%v", s.args)
		switch {
		case s.code == 0:
			assert.Equal(t, s.stdout, r.stdout, "%v", s.args)
		case s.stdout != "":
			assert.Contains(t, r.stdout, s.stdout, "%v", s.args)
		}
		assert.Contains(t, r.stderr, s.stderr, "%v", s.args)
	}
}
