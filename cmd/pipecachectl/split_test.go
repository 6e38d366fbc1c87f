package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitLine(t *testing.T) {
	cases := []struct {
		line string
		want []string
		err  bool
	}{
		{line: "", want: nil},
		{line: "   \t ", want: nil},
		{line: "get k", want: []string{"get", "k"}},
		{line: "  set   k\tv  ", want: []string{"set", "k", "v"}},
		{line: `set g "hello world"`, want: []string{"set", "g", "hello world"}},
		{line: `set g 'hello world'`, want: []string{"set", "g", "hello world"}},
		{line: `set g ""`, want: []string{"set", "g", ""}},
		{line: `set g "a\"b\\c"`, want: []string{"set", "g", `a"b\c`}},
		{line: `set g "\n\r\t\b\a"`, want: []string{"set", "g", "\n\r\t\b\a"}},
		{line: `set g "\x41\x7a\xff"`, want: []string{"set", "g", "Az\xff"}},
		{line: `set g "\xZZ"`, want: []string{"set", "g", "xZZ"}}, // not hex: the x is itself
		{line: `set g "\q"`, want: []string{"set", "g", "q"}},
		{line: `set g 'it\'s'`, want: []string{"set", "g", "it's"}},
		{line: `set g 'a\nb'`, want: []string{"set", "g", `a\nb`}}, // no escapes in single quotes
		{line: `set g a\nb`, want: []string{"set", "g", `a\nb`}},   // nor outside quotes
		{line: `set g pre"quoted part"`, want: []string{"set", "g", "prequoted part"}},
		{line: `watch 'room:*'`, want: []string{"watch", "room:*"}},
		{line: `set g "open`, err: true},
		{line: `set g 'open`, err: true},
		{line: `set g "a"b`, err: true},
		{line: `set g "trailing\`, err: true},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := splitLine(c.line)
			if c.err {
				assert.ErrorIs(t, err, errUnbalanced)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

// FuzzSplitLine: no line crashes splitLine, and arguments quoted with quoteArg split back
// into themselves.
func FuzzSplitLine(f *testing.F) {
	for _, s := range []string{`set g "hello world"`, `'it\'s'`, `"\x41\n"`, `a"b`, "\xff\x00", `"`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args, err := splitLine(line)
		if err != nil {
			return
		}
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = quoteArg(a)
		}
		again, err := splitLine(strings.Join(quoted, " "))
		require.NoError(t, err, "%q", quoted)
		assert.Equal(t, args, again)
	})
}

func TestParseTTL(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "30", want: 30 * time.Second},
		{in: "0", want: 0},
		{in: "30s", want: 30 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "-5s", err: true},
		{in: "-5", err: true},
		{in: "soon", err: true},
		{in: "", err: true},
		{in: "99999999999999999999", err: true},
		{in: "9223372037", err: true}, // seconds past what a Duration holds
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseTTL(c.in)
			if c.err {
				assert.Error(t, err)
				assert.Equal(t, 2, exitCode(err), "a bad TTL is a usage error")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestWithValue(t *testing.T) {
	cases := []struct {
		args, want []string
	}{
		{[]string{"set", "k"}, []string{"set", "k", "V"}},
		{[]string{"set", "k", "1h"}, []string{"set", "k", "V", "1h"}},
		{[]string{"cas", "k", "7"}, []string{"cas", "k", "V", "7"}},
		{[]string{"get"}, []string{"get", "V"}},
		{[]string{"mget", "a"}, []string{"mget", "a", "V"}},
		{[]string{"frob", "a"}, []string{"frob", "a", "V"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, withValue(c.args, "V"), "%v", c.args)
	}
}

func TestComplete(t *testing.T) {
	cases := []struct {
		line        string
		head, tail  string
		completions []string
	}{
		{line: "ge", head: "", completions: []string{"get "}},
		{line: "d", head: "", completions: []string{"del ", "delete ", "decr "}},
		{line: "q", head: "", completions: []string{"quit "}},
		{line: "help wa", head: "help ", completions: []string{"watch "}},
		{line: "get ke", head: "get ke"}, // keys are not completed
		{line: "zz", head: ""},
	}
	for _, c := range cases {
		head, completions, tail := complete(c.line, len([]rune(c.line)))
		assert.Equal(t, c.head, head, "%q", c.line)
		assert.ElementsMatch(t, c.completions, completions, "%q", c.line)
		assert.Equal(t, c.tail, tail, "%q", c.line)
	}
}
