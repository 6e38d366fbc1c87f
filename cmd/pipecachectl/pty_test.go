package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// Keys as a terminal sends them.
const (
	keyLeft      = "\x1b[D"
	keyUp        = "\x1b[A"
	keyBackspace = "\x7f"
	keyTab       = "\t"
	keyEnter     = "\r"
	keyCtrlC     = "\x03"
)

// terminal is pipecachectl running on a pseudo-terminal, as in a user's shell.
type terminal struct {
	tb     testing.TB
	cmd    *exec.Cmd
	pty    *os.File
	screen *syncBuffer // everything the program wrote
	exited chan error
}

func startTerminal(tb testing.TB, env []string, args ...string) *terminal {
	tb.Helper()
	cmd := exec.Command(ctlBinary(tb), args...)
	cmd.Env = ctlEnv(tb, append(env, "TERM=xterm")...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	require.NoError(tb, err)
	t := &terminal{tb: tb, cmd: cmd, pty: f, screen: &syncBuffer{}, exited: make(chan error, 1)}
	copied := make(chan struct{})
	go func() {
		io.Copy(t.screen, f) // ends with EIO once the program has exited
		close(copied)
	}()
	go func() {
		err := cmd.Wait()
		<-copied
		t.exited <- err
	}()
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		f.Close()
		tb.Logf("screen:\n%q", t.screen.String())
	})
	return t
}

// typeKeys writes keys as typed on the keyboard.
func (t *terminal) typeKeys(keys string) {
	t.tb.Helper()
	_, err := t.pty.Write([]byte(keys))
	require.NoError(t.tb, err)
}

// wait waits until the screen shows want n times in all.
func (t *terminal) wait(want string, n int) {
	t.tb.Helper()
	t.screen.waitFor(t.tb, want, n)
}

// exit waits for the program to exit and returns its exit code.
func (t *terminal) exit() int {
	t.tb.Helper()
	select {
	case err := <-t.exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		require.NoError(t.tb, err)
		return 0
	case <-time.After(time.Minute):
		t.tb.Fatal("pipecachectl did not exit")
		return -1
	}
}

// TestInteractiveLineEditing types commands into the shell on a terminal: a quoted value, a
// line corrected with the arrow keys and backspace (which must run corrected, not with escape
// bytes in its key), a line recalled from history, Tab completion, Ctrl-C at the prompt; and
// the history file afterwards.
func TestInteractiveLineEditing(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	histFile := filepath.Join(t.TempDir(), "history")
	term := startTerminal(t, []string{"PIPECACHE_HISTFILE=" + histFile}, "-addr", addr)
	prompt := addr + "> "
	term.wait(prompt, 1)

	term.typeKeys(`set g "hello world"` + keyEnter)
	term.wait("OK (version 1)", 1)
	term.typeKeys("get xg" + keyLeft + keyBackspace + keyEnter) // get xg -> get g
	term.wait("hello world\r\n(version 1)", 1)
	assert.NotContains(t, term.screen.String(), "(nil)", "the corrected line ran, not one with escape bytes")

	term.typeKeys(keyUp + keyEnter) // the last line again
	term.wait("hello world\r\n(version 1)", 2)

	term.typeKeys("pi" + keyTab + keyEnter) // completes to "ping "
	term.wait("PONG", 1)

	// Ctrl-C at the prompt drops the line, not the shell. (Typed once the line shows: a Ctrl-C
	// before the prompt reads the terminal would be a SIGINT, for the command just finished.)
	term.typeKeys("frobnicate")
	term.wait("frobnicate", 1)
	term.typeKeys(keyCtrlC)
	term.wait("^C", 1)
	term.typeKeys("ping" + keyEnter)
	term.wait("PONG", 2)
	assert.NotContains(t, term.screen.String(), "unknown command")

	term.typeKeys("quit" + keyEnter)
	assert.Equal(t, 0, term.exit())
	hist, err := os.ReadFile(histFile)
	require.NoError(t, err)
	assert.Equal(t, "set g \"hello world\"\nget g\nping \nping\nquit\n", string(hist))
}

// TestInteractiveWatchAndCtrlC: watch in the shell prints changes; Ctrl-C ends the watch and
// returns to the prompt, where the next command runs; Ctrl-D leaves.
func TestInteractiveWatchAndCtrlC(t *testing.T) {
	addr := testdaemon.Start(t, daemon.Config{}).Addr().String()
	home := t.TempDir()
	term := startTerminal(t, []string{"HOME=" + home}, "-addr", addr)
	prompt := addr + "> "
	term.wait(prompt, 1)

	term.typeKeys("watch 'room:*'" + keyEnter)
	term.wait("watching room:*", 1)
	writer, err := client.Dial(addr)
	require.NoError(t, err)
	defer writer.Close()
	_, err = writer.Set(context.Background(), "room:1", []byte("hi"))
	require.NoError(t, err)
	term.wait("set room:1 = hi (version 1)", 1)

	prompts := strings.Count(term.screen.String(), prompt)
	term.typeKeys(keyCtrlC)
	term.wait(prompt, prompts+1) // back at the prompt
	term.typeKeys("get room:1" + keyEnter)
	term.wait("hi\r\n(version 1)", 1)
	assert.NotContains(t, term.screen.String(), "(error)")

	term.typeKeys("\x04") // Ctrl-D
	assert.Equal(t, 0, term.exit())
	hist, err := os.ReadFile(filepath.Join(home, ".pipecachectl_history"))
	require.NoError(t, err)
	assert.Equal(t, "watch 'room:*'\nget room:1\n", string(hist))
}

// TestInteractiveCtrlCCancelsCommand: Ctrl-C while a command waits (here for a server that
// receives and never answers) cancels that command, not the shell.
func TestInteractiveCtrlCCancelsCommand(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	addr := silent.LocalAddr().String()
	term := startTerminal(t, nil, "-addr", addr, "-timeout", "10m")
	term.wait(addr+"> ", 1)

	term.typeKeys("get k" + keyEnter)
	_, _, err = silent.ReadFrom(make([]byte, 2048)) // the command is running: its hello came
	require.NoError(t, err)
	term.typeKeys(keyCtrlC)
	term.wait("(error) interrupted", 1)
	term.typeKeys("help" + keyEnter)
	term.wait("Commands:", 1)
	term.typeKeys("quit" + keyEnter)
	assert.Equal(t, 0, term.exit())
}
