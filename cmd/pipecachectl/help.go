package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func init() { lookup("help").run = runHelp }

const intro = `pipecachectl talks to a pipecached server, or to a cluster of them, like redis-cli.

Usage:
  pipecachectl [FLAGS] COMMAND [ARG...]   run one command and exit
  pipecachectl [FLAGS]                    read commands from stdin, one per line: an
                                          interactive shell on a terminal, a script otherwise
`

const shellDoc = `Arguments are separated by spaces; quote them as in redis-cli: "hello world" (escapes \" \\
\n \t \xHH), 'it\'s'. On a terminal: line editing, history (Up, Down, Ctrl-R; kept in
~/.pipecachectl_history or $PIPECACHE_HISTFILE), Tab completes command names, Ctrl-C cancels
the running command (or clears the line), Ctrl-D or quit leaves. With stdin not a terminal
there is no prompt and no history; every line runs even after one fails.
`

const exitDoc = `Exit codes:
  0  success; a missing key is not a failure: get prints (nil), del prints (nil)
  1  a command failed: an error from the server (exists, version mismatch, not found for
     replace, cas, incr, touch...), no server listening, a timeout, Ctrl-C
  2  usage: unknown flag or command, wrong arguments
  In a script (commands on stdin): 2 if any line was a usage error, else 1 if any failed.
`

// commandList writes one line per command: its synopsis and summary.
func commandList(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", synopsis(c), c.summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "quit, exit", "leave the shell")
	tw.Flush()
}

func synopsis(c *command) string {
	return strings.TrimSpace(c.name + " " + c.args)
}

// commandHelp describes one command.
func commandHelp(c *command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n  %s.\n", synopsis(c), upperFirst(c.summary))
	if c.doc != "" {
		fmt.Fprintf(&b, "  %s\n", c.doc)
	}
	if len(c.aliases) > 0 {
		fmt.Fprintf(&b, "  Also: %s.\n", strings.Join(c.aliases, ", "))
	}
	switch c.needs {
	case needsNode:
		b.WriteString("  Asks one node (-addr), not a cluster.\n")
	case needsCluster:
		b.WriteString("  Only with -cluster.\n")
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// runHelp is the help command: the list of commands, or one command's description.
func runHelp(_ context.Context, _ *env, args []string) (result, error) {
	if len(args) == 0 {
		var b strings.Builder
		b.WriteString("Commands:\n")
		commandList(&b)
		b.WriteString("\n" + shellDoc + "\nhelp COMMAND describes one; pipecachectl -h lists the flags.\n")
		return textResult{b.String()}, nil
	}
	c := lookup(args[0])
	if c == nil {
		return nil, usagef("help: no command %q (help lists them)", args[0])
	}
	return textResult{commandHelp(c)}, nil
}
