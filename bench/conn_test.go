package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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

func TestDialRetry(t *testing.T) {
	errDial := errors.New("no answer")
	for _, tc := range []struct {
		name        string
		failures    int // the dial fails this many times, then succeeds
		attempts    int
		wantFailed  int
		wantSuccess bool
	}{
		{"first try", 0, 5, 0, true},
		{"after two failures", 2, 5, 2, true},
		{"on the last attempt", 4, 5, 4, true},
		{"never within the attempts", 5, 5, 5, false},
		{"one attempt only", 1, 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, retried := 0, 0
			p := DialPolicy{Attempts: tc.attempts, Backoff: time.Microsecond,
				OnRetry: func(session, attempt int, err error) {
					retried++
					assert.Equal(t, 7, session)
					assert.Equal(t, retried, attempt)
					assert.ErrorIs(t, err, errDial)
				}}
			v, failed, err := dialRetry(context.Background(), p, 7, func(context.Context) (int, error) {
				calls++
				if calls <= tc.failures {
					return 0, errDial
				}
				return 42, nil
			})
			assert.Equal(t, tc.wantFailed, failed)
			if !tc.wantSuccess {
				assert.ErrorIs(t, err, errDial)
				assert.ErrorContains(t, err, "session 7")
				assert.Equal(t, tc.attempts, calls, "exactly the attempts allowed")
				assert.Equal(t, tc.attempts-1, retried, "no retry announced after the last attempt")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 42, v)
			assert.Equal(t, tc.failures, retried)
		})
	}
}

// TestDialAllStopsAtTheDeadline: the total deadline ends a back-off that would outlast it.
func TestDialAllStopsAtTheDeadline(t *testing.T) {
	errDial := errors.New("no answer")
	_, st, err := dialAll(DialPolicy{Attempts: 1000, Backoff: time.Hour, Deadline: 10 * time.Millisecond}, 3,
		func(context.Context, int) (*int, error) { return nil, errDial })
	require.ErrorIs(t, err, errNoSession)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, errDial)
	assert.Equal(t, ConnStats{Sessions: 3, DialFailures: 3}, st, "one attempt each, no retry made")
}

// TestDialAllCountsPerSession: some sessions fail for good, others after retries; the driver
// keeps the ones that connected.
func TestDialAllCountsPerSession(t *testing.T) {
	var mu sync.Mutex
	calls := map[int]int{}
	out, st, err := dialAll(DialPolicy{Attempts: 3, Backoff: time.Microsecond}, 4, func(_ context.Context, s int) (*int, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[s]++
		switch {
		case s == 0: // never
			return nil, errors.New("down")
		case s == 1 && calls[s] < 3: // on the third attempt
			return nil, errors.New("lost")
		}
		return &s, nil
	})
	require.NoError(t, err)
	assert.Nil(t, out[0])
	for s := 1; s < 4; s++ {
		require.NotNil(t, out[s])
		assert.Equal(t, s, *out[s])
	}
	assert.Equal(t, ConnStats{Sessions: 4, Connected: 3, DialRetries: 2 + 2, DialFailures: 1}, st)
}

// TestOpenRetriesUntilTheServerListens: the dials to a port nothing listens on fail (refused),
// are retried, and succeed once a daemon listens there.
func TestOpenRetriesUntilTheServerListens(t *testing.T) {
	addr := freeUDPAddr(t)
	firstRetry := make(chan struct{})
	var once sync.Once
	var retries atomic.Int64
	opened := make(chan error, 1)
	var d Driver
	go func() {
		var err error
		d, err = Open("pipecache", addr, Options{Sessions: 3, Dial: DialPolicy{Attempts: 10_000, Backoff: 10 * time.Millisecond,
			Deadline: time.Minute, OnRetry: func(int, int, error) { retries.Add(1); once.Do(func() { close(firstRetry) }) }}})
		opened <- err
	}()
	select {
	case <-firstRetry:
	case err := <-opened:
		t.Fatalf("Open returned before any dial failed: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no dial failed")
	}
	startDaemon(t, addr, t.TempDir())
	select {
	case err := <-opened:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Open did not return once the server listened")
	}
	defer d.Close()
	st := d.Stats()
	assert.Equal(t, 3, st.Connected)
	assert.Zero(t, st.DialFailures)
	assert.Equal(t, retries.Load(), st.DialRetries, "every retry counted")
	assert.Positive(t, st.DialRetries)
	res, err := Run(context.Background(), Config{Server: "pipecache", Sessions: 3, InFlight: 1, Mix: "get=1",
		Keys: 10, Dist: "uniform", Requests: 30}, d, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Errors)
	assert.Equal(t, st.DialRetries, res.DialRetries, "reported in the result")
}

// TestOpenFailsWhenNoSessionConnects: every dial refused, every attempt made, and the error
// says so.
func TestOpenFailsWhenNoSessionConnects(t *testing.T) {
	var retries atomic.Int64
	_, err := Open("pipecache", freeUDPAddr(t), Options{Sessions: 2, Dial: DialPolicy{Attempts: 3, Backoff: time.Millisecond,
		OnRetry: func(int, int, error) { retries.Add(1) }}})
	require.ErrorIs(t, err, errNoSession)
	assert.ErrorContains(t, err, "2 of 2 dials failed")
	assert.ErrorContains(t, err, "connection refused")
	assert.Equal(t, int64(2*2), retries.Load(), "two retries per session")
}

// TestSharedPipecacheIsOneSession: with Shared, every worker goes through one Client, and the
// run does exactly the requests asked.
func TestSharedPipecacheIsOneSession(t *testing.T) {
	for _, tc := range []struct {
		shared   bool
		sessions int64
	}{{true, 1}, {false, 4}} {
		t.Run(fmt.Sprintf("shared=%v", tc.shared), func(t *testing.T) {
			daemon := startDaemon(t, "127.0.0.1:0", t.TempDir())
			d, err := Open("pipecache", daemon.Addr().String(), Options{Sessions: 4, Shared: tc.shared})
			require.NoError(t, err)
			defer d.Close()
			assert.Equal(t, int(tc.sessions), d.Stats().Sessions)
			pctest.WaitFor(t, func() bool { return daemon.SessionStats().Sessions == tc.sessions }, "timed out waiting for %d sessions on the server", tc.sessions)
			res, err := Run(context.Background(), Config{Server: "pipecache", Sessions: 4, InFlight: 3, Mix: "get=80,set=20",
				Keys: 100, Dist: "uniform", Value: 10, Requests: 777, Preload: true, Prefix: "sh:", Shared: tc.shared}, d, nil)
			require.NoError(t, err)
			assert.Equal(t, int64(777), res.Ops)
			assert.Empty(t, res.Errors)
			assert.Equal(t, tc.shared, res.Shared)
			assert.Equal(t, int(tc.sessions), res.SessionsUp)
		})
	}
}

// TestSessionLostMidRunIsCounted: the server goes away in the middle of a run and comes back on
// the same address; the sessions lost are counted, the SDK redials them, and the run does all
// its requests instead of ending.
func TestSessionLostMidRunIsCounted(t *testing.T) {
	dir := t.TempDir()
	a := startDaemon(t, "127.0.0.1:0", dir)
	addr := a.Addr().String()
	d, err := Open("pipecache", addr, Options{Sessions: 2})
	require.NoError(t, err)
	defer d.Close()
	midway := &signallingDriver{Driver: d, after: 100, reached: make(chan struct{})}
	result := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = Run(context.Background(), Config{Server: "pipecache", Sessions: 2, InFlight: 2, Mix: "get=1",
			Keys: 10, Dist: "uniform", Requests: 1000}, midway, nil)
		result <- err
	}()
	pctest.WaitFor(t, func() bool {
		select {
		case <-midway.reached:
			return true
		default:
			return false
		}
	}, "timed out waiting for 100 requests")
	require.NoError(t, a.Stop(context.Background()))
	pctest.WaitFor(t, func() bool { return d.Stats().Lost >= 2 }, "timed out waiting for both sessions lost")
	startDaemon(t, addr, dir)
	select {
	case err := <-result:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the run did not finish after the server came back")
	}
	t.Logf("sessions lost %d, errors %v", res.SessionsLost, res.Errors)
	assert.Equal(t, int64(1000), res.Ops, "every request made")
	assert.GreaterOrEqual(t, res.SessionsLost, int64(2))
	for kind := range res.Errors {
		assert.Equal(t, "unavailable", kind, "only the lost sessions' requests failed")
	}
}

// signallingDriver closes reached once its connections have done after requests.
type signallingDriver struct {
	Driver
	after   int64
	n       atomic.Int64
	reached chan struct{}
}

func (s *signallingDriver) Conn(w int) Conn { return &signallingConn{s.Driver.Conn(w), s} }

type signallingConn struct {
	Conn
	d *signallingDriver
}

func (c *signallingConn) Get(ctx context.Context, key string) (bool, error) {
	hit, err := c.Conn.Get(ctx, key)
	if c.d.n.Add(1) == c.d.after {
		close(c.d.reached)
	}
	return hit, err
}

func (c *signallingConn) awaitSession(ctx context.Context, err error) {
	c.Conn.(sessionAwaiter).awaitSession(ctx, err)
}

// startDaemon runs a daemon on addr with its embedded store in dir (a restart reuses both).
func startDaemon(t testing.TB, addr, dir string) *daemon.Daemon {
	t.Helper()
	return testdaemon.Start(t, daemon.Config{Store: dir,
		Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: addr}}})
}

// freeUDPAddr returns a loopback UDP address nothing listens on (for now).
func freeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := c.LocalAddr().String()
	require.NoError(t, c.Close())
	return addr
}
