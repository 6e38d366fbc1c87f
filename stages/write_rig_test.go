package stages

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// gateStore is an in-memory store whose commits the test holds, lets through or fails, one at
// a time, and which records every commit it was asked for.
type gateStore struct {
	nameservice.Store // nil: only what the rig needs is implemented

	mu      sync.Mutex
	cond    *sync.Cond
	data    map[string]nameservice.Record
	held    bool            // commits wait for a decision
	verdict []error         // the outcome of each commit held so far: nil lets it through
	commits [][]string      // each commit's writes, as "key=value@version" or "key deleted@version"
	arrived int             // commits that reached Commit
	closed  bool            // Close was called: held commits go through
	loads   map[string]bool // keys loaded
}

func newGateStore() *gateStore {
	s := &gateStore{data: map[string]nameservice.Record{}, loads: map[string]bool{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *gateStore) Get(key string, nowMs int64) (nameservice.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads[key] = true
	r, ok := s.data[key]
	return r, ok, nil
}

func (s *gateStore) Commit(ws []nameservice.Write) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.arrived
	s.arrived++
	var desc []string
	for _, w := range ws {
		if w.Delete {
			desc = append(desc, fmt.Sprintf("%s deleted@%d", w.Key, w.Record.Version))
		} else {
			desc = append(desc, fmt.Sprintf("%s=%s@%d", w.Key, w.Record.Value, w.Record.Version))
		}
	}
	s.commits = append(s.commits, desc)
	s.cond.Broadcast()
	for s.held && len(s.verdict) <= n && !s.closed {
		s.cond.Wait()
	}
	if n < len(s.verdict) && s.verdict[n] != nil {
		return s.verdict[n]
	}
	for _, w := range ws {
		if w.Delete {
			delete(s.data, w.Key)
		} else {
			s.data[w.Key] = nameservice.Record{Value: append([]byte(nil), w.Record.Value...), Version: w.Record.Version, ExpireAt: w.Record.ExpireAt}
		}
	}
	return nil
}

func (s *gateStore) SweepExpired(int64, int) (int, error) { return 0, nil }
func (s *gateStore) MaxVersion() (uint64, error)          { return 0, nil }
func (s *gateStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
	return nil
}

// hold makes commits wait for decide.
func (s *gateStore) hold() { s.mu.Lock(); s.held = true; s.mu.Unlock() }

// release lets every commit through from now on.
func (s *gateStore) release() { s.mu.Lock(); s.held = false; s.cond.Broadcast(); s.mu.Unlock() }

// decide lets commit n (0-based, counted since the store opened) through (nil) or fails it.
func (s *gateStore) decide(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.verdict) <= n {
		s.verdict = append(s.verdict, nil)
	}
	s.verdict[n] = err
	s.cond.Broadcast()
}

// waitArrived waits until n commits have reached the store and returns the writes of commit n-1.
func (s *gateStore) waitArrived(tb testing.TB, n int) []string {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(pctest.Timeout)
	for s.arrived < n {
		if time.Now().After(deadline) {
			tb.Fatalf("commit %d never reached the store (%d did)", n, s.arrived)
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	return s.commits[n-1]
}

func (s *gateStore) value(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data[key]
	return string(r.Value), ok
}

// writeRig is CachePrc and Outgoing over a gateStore, fed requests by the test in a known order,
// with the replies and the change events collected in the order they leave CachePrc.
type writeRig struct {
	store   *gateStore
	cache   *CachePrc
	mu      sync.Mutex
	replies map[uint64]*task.Task
	order   []uint64 // reply ids, in the order they left
	events  []string // "set key@ver=value", "set key@ver (no value)", "delete key@ver"
	nextID  uint64
	changed chan struct{}
}

func newWriteRig(tb testing.TB, cfg CacheConfig, ocfg OutgoingConfig) *writeRig {
	tb.Helper()
	r := &writeRig{store: newGateStore(), replies: map[uint64]*task.Task{}, changed: make(chan struct{}, 1)}
	if cfg.Processors == nil {
		procs := processor.Default()
		for name, fn := range testProcs {
			require.NoError(tb, procs.Register(name, fn))
		}
		cfg.Processors = procs
	}
	cfg.Logger, ocfg.Logger = pctest.Logger(tb), pctest.Logger(tb)
	cfg.NoTTLJitter = true
	var err error
	r.cache, err = NewCachePrc(cfg, 0)
	require.NoError(tb, err)
	out, err := NewOutgoing(ocfg, r.store, r.cache.Completions())
	require.NoError(tb, err)
	replies := newTestQueue(tb, "replies", 1<<14)
	events := newTestQueue(tb, "events", 1<<14)
	startLoop(tb, loop.Config{Name: "incoming"}, replies, r.reply)
	startLoop(tb, loop.Config{Name: "sessionmgr"}, events, r.event)
	r.cache.ConnectEvents(events, func() bool { return true }, &byteBudget{limit: 1 << 30})
	r.cache.Connect(out.Requests(), out.Commits(), replies)
	require.NoError(tb, out.Loop().Start())
	require.NoError(tb, r.cache.Start())
	tb.Cleanup(func() {
		r.store.Close()
		ctx := context.Background()
		r.cache.Requests().Close(ctx)
		if err := loop.StopAll(ctx, out.Loop(), r.cache.Loop()); err != nil && !errors.Is(err, loop.ErrLoopStopped) {
			tb.Errorf("stopping the rig: %v", err)
		}
	})
	return r
}

func (r *writeRig) reply(t *task.Task) {
	r.mu.Lock()
	r.replies[t.ReqID] = t
	r.order = append(r.order, t.ReqID)
	r.mu.Unlock()
	r.poke()
}

func (r *writeRig) event(t *task.Task) {
	r.mu.Lock()
	kind := "set"
	switch t.Kind & task.PushKindMask {
	case task.PushDelete:
		kind = "delete"
	case task.PushExpire:
		kind = "expire"
	}
	ev := fmt.Sprintf("%s %s@%d", kind, t.Key, t.Version)
	switch {
	case t.Kind&task.PushNoValue != 0:
		ev += " (no value)"
	case kind == "set":
		ev += "=" + string(t.Value)
	}
	r.events = append(r.events, ev)
	r.mu.Unlock()
	task.Put(t)
	r.poke()
}

func (r *writeRig) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// send queues a request and returns its id; fill sets its fields.
func (r *writeRig) send(tb testing.TB, op task.Op, key string, fill func(t *task.Task)) uint64 {
	tb.Helper()
	r.nextID++
	t := task.Get()
	t.Op, t.ReqID = op, r.nextID
	t.Key = append(t.Key, key...)
	if fill != nil {
		fill(t)
	}
	pushRetry(tb, r.cache.Requests(), t)
	return t.ReqID
}

func (r *writeRig) set(tb testing.TB, key, value string) uint64 {
	return r.send(tb, task.OpSet, key, func(t *task.Task) { t.Value = append(t.Value, value...) })
}

// barrier waits until CachePrc has handled everything sent so far (and run its iteration's end).
func (r *writeRig) barrier(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, r.cache.Loop().Barrier(pctest.Context(tb)))
}

// wait waits for the reply to id and returns it.
func (r *writeRig) wait(tb testing.TB, id uint64) *task.Task {
	tb.Helper()
	deadline := time.After(pctest.Timeout)
	for {
		r.mu.Lock()
		t := r.replies[id]
		r.mu.Unlock()
		if t != nil {
			return t
		}
		select {
		case <-r.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("no reply to request %d", id)
		}
	}
}

// answered reports whether id has its reply.
func (r *writeRig) answered(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replies[id] != nil
}

// replyOrder returns the ids answered so far, in order.
func (r *writeRig) replyOrder() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.order...)
}

// eventsSoFar returns the change events so far, in order.
func (r *writeRig) eventsSoFar() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// waitEvents waits until n events have left CachePrc and returns them.
func (r *writeRig) waitEvents(tb testing.TB, n int) []string {
	tb.Helper()
	pctest.WaitFor(tb, func() bool { return len(r.eventsSoFar()) >= n }, "fewer than %d change events: %q", n, r.eventsSoFar())
	return r.eventsSoFar()
}
