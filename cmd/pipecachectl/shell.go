package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// maxLine bounds a line of a script (a command with its value).
const maxLine = 64 << 20

// interrupts hands Ctrl-C (and the other signals it was made for) to the command running.
type interrupts struct{ ch chan os.Signal }

func notifyInterrupts(sigs ...os.Signal) *interrupts {
	in := &interrupts{ch: make(chan os.Signal, 1)}
	signal.Notify(in.ch, sigs...)
	return in
}

func (in *interrupts) stop() { signal.Stop(in.ch) }

// run runs fn with a context that the next signal cancels (its cause errInterrupted). A signal
// that came while nothing ran is dropped.
func (in *interrupts) run(fn func(ctx context.Context) error) error {
	select {
	case <-in.ch:
	default:
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-in.ch:
			cancel(errInterrupted)
		case <-done:
		}
	}()
	return fn(ctx)
}

// oneShot runs the command on the command line.
func (c *ctl) oneShot(stdin io.Reader) int {
	args := c.cfg.args
	if c.cfg.stdinValue {
		value, err := io.ReadAll(stdin)
		if err != nil {
			c.print.printError("pipecachectl: -x: ", err)
			return 1
		}
		args = withValue(args, string(value))
	}
	in := notifyInterrupts(os.Interrupt, syscall.SIGTERM)
	defer in.stop()
	err := in.run(func(ctx context.Context) error { return c.exec(ctx, args) })
	if err != nil {
		c.print.printError("pipecachectl: ", err)
	}
	return exitCode(err)
}

// withValue puts value into args (a command and its arguments) where the command takes its
// VALUE (set KEY VALUE [TTL]), or last for a command without one.
func withValue(args []string, value string) []string {
	cmd := lookup(args[0])
	at := len(args)
	if cmd != nil && cmd.value >= 0 && cmd.value+1 < len(args) {
		at = cmd.value + 1
	}
	return append(args[:at:at], append([]string{value}, args[at:]...)...)
}

func isQuit(args []string) bool {
	return len(args) == 1 && (strings.EqualFold(args[0], "quit") || strings.EqualFold(args[0], "exit"))
}

// script runs the commands piped to stdin, one per line, without prompts, to the end (or quit,
// or Ctrl-C); a failed line is reported with its number and sets the exit code.
func (c *ctl) script(stdin io.Reader) int {
	in := notifyInterrupts(os.Interrupt, syscall.SIGTERM)
	defer in.stop()
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	worst := 0
	for n := 1; sc.Scan(); n++ {
		args, err := splitLine(sc.Text())
		switch {
		case err != nil:
			err = usageError{err.Error()}
		case len(args) == 0:
			continue
		case isQuit(args):
			return worst
		default:
			err = in.run(func(ctx context.Context) error { return c.exec(ctx, args) })
		}
		if err != nil {
			c.print.printError(fmt.Sprintf("pipecachectl: line %d: ", n), err)
			worst = max(worst, exitCode(err))
		}
		if errors.Is(err, errInterrupted) {
			return worst // Ctrl-C stops the script
		}
	}
	if err := sc.Err(); err != nil {
		c.print.printError("pipecachectl: reading stdin: ", err)
		worst = max(worst, 1)
	}
	return worst
}
