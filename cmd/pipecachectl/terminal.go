package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/peterh/liner"
)

// shell is the interactive mode: a prompt with line editing, history and completion by
// github.com/peterh/liner. Liner puts the terminal in raw mode only while it reads a line, so
// a Ctrl-C typed while a command runs is a SIGINT, which cancels that command; at the prompt
// it clears the line.
func (c *ctl) shell() int {
	ln := liner.NewLiner()
	defer ln.Close()
	ln.SetWordCompleter(complete)
	ln.SetTabCompletionStyle(liner.TabPrints)
	hist := openHistory(ln, c.print)
	in := notifyInterrupts(os.Interrupt)
	defer in.stop()
	go leaveOnTermination(ln)
	prompt := c.cfg.target() + "> "
	for {
		line, err := ln.Prompt(prompt)
		switch {
		case errors.Is(err, io.EOF): // Ctrl-D
			fmt.Fprintln(c.print.out)
			return 0
		case err != nil:
			c.print.printError("pipecachectl: ", err)
			return 1
		}
		args, err := splitLine(line)
		if err == nil && len(args) == 0 {
			continue
		}
		hist.add(line)
		switch {
		case err != nil:
			err = usageError{err.Error()}
		case isQuit(args):
			return 0
		default:
			err = in.run(func(ctx context.Context) error { return c.exec(ctx, args) })
		}
		if err != nil {
			c.print.printError("(error) ", err)
		}
	}
}

// leaveOnTermination restores the terminal and exits on SIGTERM or SIGHUP, which would
// otherwise leave it without echo.
func leaveOnTermination(ln *liner.State) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGHUP)
	<-ch
	ln.Close()
	os.Exit(1)
}

// complete completes command names: the first word of a line, and the word after help.
func complete(line string, pos int) (head string, completions []string, tail string) {
	runes := []rune(line)
	head, tail = string(runes[:pos]), string(runes[pos:])
	start := strings.LastIndexAny(head, " \t") + 1
	before := strings.Fields(head[:start])
	if len(before) > 1 || len(before) == 1 && lookup(before[0]) != lookup("help") {
		return head, nil, tail
	}
	word := strings.ToLower(head[start:])
	names := []string{}
	for _, cmd := range commands {
		names = append(append(names, cmd.name), cmd.aliases...)
	}
	if len(before) == 0 {
		names = append(names, "quit", "exit")
	}
	for _, n := range names {
		if strings.HasPrefix(n, word) {
			completions = append(completions, n+" ")
		}
	}
	return head[:start], completions, tail
}

// history is the shell's history file: $PIPECACHE_HISTFILE if set (empty: no file), else
// ~/.pipecachectl_history. Only the shell on a terminal records lines.
type history struct {
	ln    *liner.State
	path  string
	print *printer
}

func openHistory(ln *liner.State, p *printer) *history {
	h := &history{ln: ln, print: p}
	path, ok := os.LookupEnv("PIPECACHE_HISTFILE")
	if !ok {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".pipecachectl_history")
		}
	}
	h.path = path
	if path == "" {
		return h
	}
	f, err := os.Open(path)
	if err != nil {
		return h // none yet
	}
	defer f.Close()
	if _, err := ln.ReadHistory(f); err != nil {
		p.printError("pipecachectl: history "+path+": ", err)
	}
	return h
}

// add records line and saves the history (at most liner.HistoryLimit lines), so that a shell
// that is killed loses nothing.
func (h *history) add(line string) {
	h.ln.AppendHistory(line)
	if h.path == "" {
		return
	}
	var b bytes.Buffer
	h.ln.WriteHistory(&b)
	if err := os.WriteFile(h.path, b.Bytes(), 0o600); err != nil {
		h.print.printError("pipecachectl: history: ", err)
		h.path = "" // said once
	}
}
