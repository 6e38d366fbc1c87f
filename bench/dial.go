package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// DialPolicy says how a driver retries a failed dial. Under packet loss a session's hello (or a
// TCP handshake) is lost often enough that one dial in many fails; a benchmark that gave up its
// whole run for one of its 50 dials would measure nothing, and one that hid the failures would
// measure something else than it says.
type DialPolicy struct {
	// Attempts is how many times one session is dialled before it counts as failed (default 5).
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each further one up to
	// 2 s, with jitter (default 100 ms).
	Backoff time.Duration
	// Deadline bounds all of a driver's dials together (default 60 s): a session still not
	// connected by then counts as failed.
	Deadline time.Duration
	// OnRetry, if set, is called after each failed attempt that will be retried, from the
	// dialling goroutine (several sessions dial at once).
	OnRetry func(session, attempt int, err error)
}

func (p DialPolicy) withDefaults() DialPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Backoff <= 0 {
		p.Backoff = 100 * time.Millisecond
	}
	if p.Deadline <= 0 {
		p.Deadline = time.Minute
	}
	return p
}

// ConnStats is what a driver counts about its connections.
type ConnStats struct {
	Sessions     int   // sessions (connections) asked for: 1 for a shared pipecache client
	Connected    int   // sessions whose dial succeeded; the workers of the others do not run
	DialRetries  int64 // attempts made after a failed one
	DialFailures int64 // sessions that never connected (every attempt failed)
	// Lost counts sessions lost after they connected (and redialled by the SDK) so far; only the
	// pipecache driver tells (go-redis and gomemcache redial inside their pools, unseen: their
	// lost connections show as errors).
	Lost int64
}

// errNoSession is returned by Open when not a single session could connect.
var errNoSession = errors.New("bench: no session connected")

// dialRetry calls dial until it succeeds, p.Attempts attempts have failed, or ctx ends. It returns
// how many attempts failed before the one that succeeded (or all of them).
func dialRetry[T any](ctx context.Context, p DialPolicy, session int, dial func(context.Context) (T, error)) (T, int, error) {
	var zero T
	backoff := p.Backoff
	for attempt := 1; ; attempt++ {
		v, err := dial(ctx)
		if err == nil {
			return v, attempt - 1, nil
		}
		if attempt >= p.Attempts || ctx.Err() != nil {
			return zero, attempt, fmt.Errorf("session %d: %d attempts: %w", session, attempt, err)
		}
		if p.OnRetry != nil {
			p.OnRetry(session, attempt, err)
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, attempt, fmt.Errorf("session %d: %d attempts, then %w: %w", session, attempt, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// dialAll dials n sessions, up to 16 at a time, each with dialRetry, within p.Deadline. The
// result has nil (zero) entries for the sessions that failed; the error is the last failure, and
// is set only if every session failed.
func dialAll[T comparable](p DialPolicy, n int, dial func(ctx context.Context, session int) (T, error)) ([]T, ConnStats, error) {
	p = p.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), p.Deadline)
	defer cancel()
	out := make([]T, n)
	st := ConnStats{Sessions: n}
	var mu sync.Mutex // guards st, lastErr
	var lastErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			v, failed, err := dialRetry(ctx, p, i, func(ctx context.Context) (T, error) { return dial(ctx, i) })
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.DialRetries += int64(failed - 1)
				st.DialFailures++
				lastErr = err
				return
			}
			st.DialRetries += int64(failed)
			st.Connected++
			out[i] = v
		})
	}
	wg.Wait()
	if st.Connected == 0 {
		return out, st, fmt.Errorf("%w: %d of %d dials failed, the last: %w", errNoSession, st.DialFailures, n, lastErr)
	}
	return out, st, nil
}
