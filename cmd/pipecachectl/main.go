package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole program: it returns the exit code.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	cfg, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	c := &ctl{cfg: cfg, print: &printer{format: cfg.format, out: stdout, errw: stderr}}
	defer c.close()
	switch {
	case len(cfg.args) > 0:
		return c.oneShot(stdin)
	case term.IsTerminal(int(stdin.Fd())):
		return c.shell()
	default:
		return c.script(stdin)
	}
}
