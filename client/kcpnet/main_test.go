//go:build linux

package kcpnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipecache/pipecache/stages"
)

// serverEnv, when set, makes the test binary a bare network stage instead (serveBare): the
// benchmarks run the server in a process of its own so that the CPU each side spends can be
// told apart.
const serverEnv = "KCPNET_TEST_BARE_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) != "" {
		os.Exit(serveBare())
	}
	os.Exit(m.Run())
}

// serveBare runs a bare network stage on a free loopback port, prints its address, and serves
// until stdin closes.
func serveBare() int {
	in, err := stages.NewIncoming(stages.IncomingConfig{Transport: bareConfig()})
	if err == nil {
		err = in.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(in.Addr())
	io.Copy(io.Discard, os.Stdin)
	in.Stop(context.Background())
	return 0
}

// serverProcess is a bare network stage in a child process.
type serverProcess struct {
	addr netip.AddrPort
	pid  int
}

func startServerProcess(tb testing.TB) *serverProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("server process: %v", err)
	}
	addr, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		tb.Fatalf("server process printed %q: %v", line, err)
	}
	return &serverProcess{addr: addr, pid: cmd.Process.Pid}
}

// cpu returns the CPU time the server process has used (user and system, all threads), in
// clock ticks of 10 ms.
func (p *serverProcess) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU returns the CPU time this process has used, user and system.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
