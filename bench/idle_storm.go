package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// stormState is the storm's bookkeeping (run clock, ns; counters from every goroutine).
type stormState struct {
	startAt, endAt   atomic.Int64 // when the sessions were dropped, and when the last came back
	dropping         atomic.Bool  // while sessions are being dropped
	dropped          atomic.Int64
	resumed, expired atomic.Int64 // back on their session, or on a new one
}

// StormResult is what the storm measured.
type StormResult struct {
	At       float64 `json:"at_s"`     // when it began, seconds into the run
	Sessions int64   `json:"sessions"` // sessions that dropped their conversations
	Resumed  int64   `json:"resumed"`  // back on the same session (resuming hello accepted, same id)
	Expired  int64   `json:"expired"`  // back on a new session: theirs had expired (or was not resumed)
	NotBack  int64   `json:"not_back"` // neither by the end of the run
	Seconds  float64 `json:"seconds"`  // from the drop to the last one back (0 if not all came back)
	P50      float64 `json:"p50_ms"`   // time to be back, per session
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// stormPoll is how often the storm checks whether its moment has come, and whether it is over.
const stormPoll = 20 * time.Millisecond

// runStorm waits for StormAt and for every session to be open, drops the conversations of
// cfg.Storm sessions at once (as a network blip would, without a word to the server) and lets
// them resume on fresh ones at StormRate, then waits for them to be back.
func (r *Idle) runStorm(ctx context.Context) {
	t := time.NewTicker(stormPoll)
	defer t.Stop()
	for r.now() < int64(r.cfg.StormAt) || r.allOpenAt.Load() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	r.limiter.SetLimit(limitOf(r.cfg.StormRate))
	r.limiter.SetBurst(burstOf(r.cfg.StormRate))
	defer func() {
		r.limiter.SetLimit(limitOf(r.cfg.Rate))
		r.limiter.SetBurst(burstOf(r.cfg.Rate))
	}()
	r.storm.dropping.Store(true)
	r.storm.startAt.Store(r.now())
	r.dropForStorm(r.cfg.Storm)
	r.storm.dropping.Store(false)
	r.checkStormEnd(r.now())
	for r.storm.endAt.Load() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dropForStorm drops the conversations of the first n live sessions (consecutive sessions use
// every source address in turn).
func (r *Idle) dropForStorm(n int) {
	for i := range r.sess {
		if r.storm.dropped.Load() == int64(n) {
			return
		}
		s := &r.sess[i]
		s.mu.Lock()
		if s.state == stLive {
			s.storm = true
			r.storm.dropped.Add(1)
			r.drop(s, false)
		}
		s.mu.Unlock()
	}
}

// stormBack counts a storm session back: on its own session (same) or a new one. Caller holds
// the session's mu.
func (r *Idle) stormBack(same bool, now int64) {
	r.record(r.hist.storm, nil, now-r.storm.startAt.Load())
	if same {
		r.storm.resumed.Add(1)
	} else {
		r.storm.expired.Add(1)
	}
	r.checkStormEnd(now)
}

// checkStormEnd notes the storm's end once every session it dropped is back (or it dropped
// none).
func (r *Idle) checkStormEnd(now int64) {
	st := &r.storm
	if !st.dropping.Load() && st.resumed.Load()+st.expired.Load() >= st.dropped.Load() {
		st.endAt.CompareAndSwap(0, now)
	}
}

// stormResult summarises the storm (nil if it never began).
func (r *Idle) stormResult() *StormResult {
	start := r.storm.startAt.Load()
	if start == 0 {
		return nil
	}
	s := &StormResult{At: seconds(start), Sessions: r.storm.dropped.Load(),
		Resumed: r.storm.resumed.Load(), Expired: r.storm.expired.Load()}
	s.NotBack = s.Sessions - s.Resumed - s.Expired
	if end := r.storm.endAt.Load(); end > 0 {
		s.Seconds = seconds(end - start)
	}
	r.hist.mu.Lock()
	h := r.hist.storm
	s.P50, s.P99, s.Max = msOf(h.ValueAtQuantile(50)), msOf(h.ValueAtQuantile(99)), msOf(h.Max())
	r.hist.mu.Unlock()
	return s
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }
func msOf(us int64) float64    { return float64(us) / 1e3 }
