package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// startIdleDaemon runs a daemon on addr that admits new conversations as fast as the tests open
// them (the defaults: 2,000 a second, 250 from one address).
func startIdleDaemon(tb testing.TB, dir, addr string) *daemon.Daemon {
	tb.Helper()
	return testdaemon.Start(tb, daemon.Config{Store: dir, Logger: slog.New(slog.DiscardHandler),
		Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: addr,
			PendingRate: 1 << 20, SourceRate: 1 << 20, MaxPending: 1 << 14, PendingPerSource: 1 << 14}}})
}

// syncBuffer is a bytes.Buffer safe for the reporter to write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// idleRun is an idle run in the background.
type idleRun struct {
	r        *Idle
	cancel   func()
	done     chan struct{}
	res      IdleResult
	err      error
	progress syncBuffer
}

func startIdle(t *testing.T, cfg IdleConfig) *idleRun {
	t.Helper()
	r, err := NewIdle(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	run := &idleRun{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.res, run.err = r.Run(ctx, &run.progress)
	}()
	t.Cleanup(func() { cancel(); <-run.done })
	return run
}

// stop ends the run and returns its result.
func (run *idleRun) stop(t *testing.T) IdleResult {
	t.Helper()
	run.cancel()
	<-run.done
	require.NoError(t, run.err)
	var b bytes.Buffer
	ReportIdle(&b, run.res)
	t.Logf("progress:\n%s\nresult:\n%s", run.progress.String(), b.String())
	return run.res
}

// idleSessions is how many sessions the big test opens: fewer under the race detector, whose
// cost on two shared cores would otherwise be what the test measures.
func idleSessions() int {
	if raceEnabled {
		return 1000
	}
	return 2000
}

// The idle tests' times are generous (tests/doc.go): the tool gives a conversation up after two
// heartbeats unanswered and the server ends a session after three intervals of silence, so with
// 1 s heartbeats a process held off the cores for 2 s looked like a dead server: its sessions
// resumed on fresh conversations, whose hellos loaded it more, and the next ones timed out (a
// run with 1,440 silent, 188 hello timeouts, 400 sessions the server expired). With 5 s
// heartbeats the tool waits 10 s and the server 15 s; a hello may take 30 s.
const (
	idleTestBeat  = 5 * time.Second
	idleTestHello = 30 * time.Second
)

// TestIdleSessionsStayAliveThroughAStorm: 2,000 sessions from four source addresses open, keep
// alive with heartbeats for more than a lease, and a quarter of them drop their conversations
// and resume on fresh ones, all on their own sessions; none ever expires. At the end every
// session says goodbye.
func TestIdleSessionsStayAliveThroughAStorm(t *testing.T) {
	d := startIdleDaemon(t, t.TempDir(), "127.0.0.1:0")
	n := idleSessions()
	storm := n / 4
	sources, err := ParseSourceIPs("127.0.1.1-127.0.1.4")
	require.NoError(t, err)
	run := startIdle(t, IdleConfig{Addr: d.Addr().String(), Sessions: n, Heartbeat: idleTestBeat, HelloTimeout: idleTestHello,
		SourceIPs: sources, Duration: 5 * time.Minute, Storm: storm, Progress: 200 * time.Millisecond,
		ServerStats: true, Goodbye: true, PID: os.Getpid()}) // the "server" is in this process
	r := run.r
	pctest.WaitFor(t, func() bool { return r.Snapshot().Live == int64(n) }, "timed out waiting for every session open")
	pctest.WaitFor(t, func() bool { s := r.stormResult(); return s != nil && s.NotBack == 0 }, "timed out waiting for the storm over")
	// Several intervals after the storm: each session has had more than a lease's worth of
	// heartbeats (four intervals; the lease is three).
	beats := r.Snapshot().HeartbeatOK
	pctest.WaitFor(t, func() bool { return r.Snapshot().HeartbeatOK >= beats+4*int64(n) }, "timed out waiting for four more rounds of heartbeats")
	ss := d.SessionStats()
	assert.Equal(t, int64(n), ss.Sessions, "every session alive, none new")
	assert.Zero(t, ss.Expired)
	pctest.WaitFor(t, func() bool { st := r.srvStats.Load(); return st != nil && (*st)["sessions"] == int64(n) }, "timed out waiting for the server's stats")
	assert.Contains(t, run.progress.String(), "live")

	res := run.stop(t)
	assert.Equal(t, int64(n), res.Opened, "one new session each")
	assert.Equal(t, int64(n), res.Live)
	assert.Empty(t, res.HelloFailures)
	assert.Empty(t, res.HeartbeatErrors)
	for name, v := range map[string]int64{"expired": res.Expired, "resets": res.Resets, "silent": res.Silent,
		"timeouts": res.HelloTimeouts, "lost": res.Lost, "send errors": res.SendErrors, "unexpected": res.Unexpected} {
		assert.Zero(t, v, name)
	}
	assert.Equal(t, int64(storm), res.Resumed)
	assert.Equal(t, int64(storm), res.Reopens)
	require.NotNil(t, res.Storm)
	assert.Equal(t, StormResult{At: res.Storm.At, Sessions: int64(storm), Resumed: int64(storm), Seconds: res.Storm.Seconds,
		P50: res.Storm.P50, P99: res.Storm.P99, Max: res.Storm.Max}, *res.Storm)
	assert.Positive(t, res.Storm.Seconds)
	assert.Positive(t, res.HeartbeatP99)
	assert.Equal(t, idleTestBeat.Milliseconds(), res.HeartbeatMs)
	assert.Equal(t, 4, res.SourceIPs)
	assert.Equal(t, 4, res.Sockets, "one socket per source address")
	assert.Equal(t, int64(n), res.Goodbyes)
	assert.Positive(t, res.ServerRSS)
	assert.Positive(t, res.ServerCPU)
	assert.Positive(t, res.RestSeconds, "from all open to the storm")
	assert.Positive(t, res.ClientRSS)
	pctest.WaitFor(t, func() bool { return d.SessionStats().Sessions == 0 }, "timed out waiting for every session ended")
	assert.Zero(t, d.SessionStats().Expired)
}

// TestIdleSessionsResumeAfterResetsAndStartOverAfterARestart: when the server drops every
// conversation, each session hears a reset (a goodbye with id 0 and code 8) at its next
// heartbeat and resumes on a fresh conversation; when the server restarts (and knows no
// session), each finds the port closed, then its resume refused, and opens a new session.
func TestIdleSessionsResumeAfterResetsAndStartOverAfterARestart(t *testing.T) {
	dir := t.TempDir()
	d := startIdleDaemon(t, dir, "127.0.0.1:0")
	const n = 300
	run := startIdle(t, IdleConfig{Addr: d.Addr().String(), Sessions: n, Heartbeat: idleTestBeat, HelloTimeout: idleTestHello,
		Duration: 5 * time.Minute})
	r := run.r
	pctest.WaitFor(t, func() bool { return r.Snapshot().Live == n }, "timed out waiting for every session open")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, d.DropConversations(ctx))
	pctest.WaitFor(t, func() bool { c := r.Snapshot(); return c.Resumed == n && c.Live == n }, "timed out waiting for every session resumed")
	c := r.Snapshot()
	assert.Equal(t, int64(n), c.Resets+c.Silent, "each noticed: a reset, or at worst the silence")
	assert.Positive(t, c.Resets)
	assert.Equal(t, int64(n), d.SessionStats().Sessions)
	assert.Zero(t, d.SessionStats().Expired)

	addr := d.Addr().String()
	require.NoError(t, d.Stop(ctx))
	d2 := startIdleDaemon(t, dir, addr)
	pctest.WaitFor(t, func() bool { c := r.Snapshot(); return c.Expired == n && c.Live == n }, "timed out waiting for every session started over")
	assert.Equal(t, int64(n), d2.SessionStats().Sessions)
	res := run.stop(t)
	assert.Equal(t, int64(2*n), res.Opened)
	assert.Equal(t, int64(n), res.Expired)
	assert.Empty(t, res.HelloFailures)
}
