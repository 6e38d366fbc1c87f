package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// recorder is a Hook that logs every call it wraps, before and after.
type recorder struct {
	name string
	mu   *sync.Mutex
	log  *[]string
}

func (r recorder) Process(next ProcessFunc) ProcessFunc {
	return func(ctx context.Context, call *Call) error {
		r.add(fmt.Sprintf("%s> %s %q", r.name, call.Op, call.Key))
		err := next(ctx, call)
		r.add(fmt.Sprintf("%s< %s %q %s near=%v err=%v", r.name, call.Op, call.Key, call.Addr, call.NearCache, errors.Is(err, ErrNotFound)))
		return err
	}
}

func (r recorder) add(s string) {
	r.mu.Lock()
	*r.log = append(*r.log, s)
	r.mu.Unlock()
}

// dataServer answers every data op: ok with version 7, except keys named "missing".
func dataServer(requests *atomic.Int64) fakeHandler {
	return sessionless(func(h *wire.Header, _ []byte) (*wire.Header, []byte) {
		requests.Add(1)
		switch {
		case string(h.Key) == "missing":
			return &wire.Header{Code: task.CodeNotFound}, nil
		case h.Op == task.OpIncr:
			return &wire.Header{}, []byte("5")
		case h.Op == task.OpStats:
			return &wire.Header{}, []byte(`{"gets":3}`)
		case h.Op == task.OpMGet:
			return &wire.Header{}, wire.AppendMGetResult(nil, true, 7, []byte("v"))
		}
		return &wire.Header{Ver: 7}, []byte("v")
	})
}

// TestHooksWrapEveryCallInOrder: every call of the API goes through the hooks, the first given
// outermost, with its op, key and server; the hooks see the call's error.
func TestHooksWrapEveryCallInOrder(t *testing.T) {
	var requests atomic.Int64
	addr := startFake(t, dataServer(&requests))
	var mu sync.Mutex
	var log []string
	c, err := Dial(addr, WithHook(recorder{"a", &mu, &log}), WithHook(recorder{"b", &mu, &log}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	calls := []struct {
		op, key string
		run     func() error
	}{
		{"get", "k", func() error { _, err := c.Get(ctx, "k"); return err }},
		{"get", "missing", func() error { _, err := c.Get(ctx, "missing"); return err }},
		{"mget", "", func() error { _, err := c.MGet(ctx, "k"); return err }},
		{"set", "k", func() error { _, err := c.Set(ctx, "k", nil); return err }},
		{"add", "k", func() error { _, err := c.Add(ctx, "k", nil); return err }},
		{"replace", "k", func() error { _, err := c.Replace(ctx, "k", nil); return err }},
		{"cas", "k", func() error { _, err := c.CAS(ctx, "k", nil, 1); return err }},
		{"delete", "k", func() error { return c.Delete(ctx, "k") }},
		{"incr", "k", func() error { _, err := c.Incr(ctx, "k", 1); return err }},
		{"touch", "k", func() error { return c.Touch(ctx, "k", 0) }},
		{"ping", "", func() error { return c.Ping(ctx) }},
		{"echo", "", func() error { _, err := c.Echo(ctx, nil); return err }},
		{"stats", "", func() error { _, err := c.Stats(ctx); return err }},
	}
	for _, call := range calls {
		t.Run(call.op+" "+call.key, func(t *testing.T) {
			mu.Lock()
			log = nil
			mu.Unlock()
			err := call.run()
			notFound := call.key == "missing"
			if (err != nil) != notFound {
				t.Fatalf("%s: %v", call.op, err)
			}
			want := []string{
				fmt.Sprintf("a> %s %q", call.op, call.key),
				fmt.Sprintf("b> %s %q", call.op, call.key),
				fmt.Sprintf("b< %s %q %s near=false err=%v", call.op, call.key, addr, notFound),
				fmt.Sprintf("a< %s %q %s near=false err=%v", call.op, call.key, addr, notFound),
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(log, "\n") != strings.Join(want, "\n") {
				t.Errorf("hooks saw\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestHookControlsTheCall: a hook's context is the one the call uses, and a hook that does
// not call next stops the call before it is sent.
func TestHookControlsTheCall(t *testing.T) {
	var requests atomic.Int64
	addr := startFake(t, dataServer(&requests))
	errRefused := errors.New("refused by the hook")
	c, err := Dial(addr, WithHook(HookFunc(func(next ProcessFunc) ProcessFunc {
		return func(ctx context.Context, call *Call) error {
			switch call.Key {
			case "refuse":
				return errRefused
			case "cancel":
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return next(ctx, call)
			}
			return next(ctx, call)
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := requests.Load()
	if v, err := c.Set(t.Context(), "refuse", []byte("x")); !errors.Is(err, errRefused) || v != 0 {
		t.Errorf("Set refused by the hook = %d, %v; want 0, the hook's error", v, err)
	}
	if _, err := c.Get(t.Context(), "cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get under a context the hook cancelled = %v, want context.Canceled", err)
	}
	if it, err := c.Get(t.Context(), "k"); err != nil || string(it.Value) != "v" || it.Version != 7 {
		t.Errorf("Get through the hook = %+v, %v", it, err)
	}
	// The server answers in stream order: once the last Get's reply is here, it has read every
	// request sent before it.
	if n := requests.Load() - before; n != 1 {
		t.Errorf("the server got %d requests, want 1: a call refused or cancelled by the hook is not sent", n)
	}
}

// TestCallUnderAnEndedContextIsNotSent: a call whose context has already ended fails with the
// context's error, every time, and sends nothing. (It used to be sent, and then its reply and
// the context's end raced in one select: on an idle machine the call succeeded at random.)
func TestCallUnderAnEndedContextIsNotSent(t *testing.T) {
	var requests atomic.Int64
	c, err := Dial(startFake(t, dataServer(&requests)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	before := requests.Load()
	for range 50 {
		if _, err := c.Get(ended, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get under an ended context = %v, want context.Canceled", err)
		}
	}
	if _, err := c.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load() - before; n != 1 {
		t.Errorf("the server got %d requests, want 1 (the last Get's)", n)
	}
}

// TestClusterHooksRunOncePerCall: a Cluster runs its hooks once per call, saying which node
// the call went to, and its node clients run none.
func TestClusterHooksRunOncePerCall(t *testing.T) {
	var requests atomic.Int64
	addr := startFake(t, dataServer(&requests))
	var mu sync.Mutex
	var calls []Call
	hook := HookFunc(func(next ProcessFunc) ProcessFunc {
		return func(ctx context.Context, call *Call) error {
			err := next(ctx, call)
			mu.Lock()
			calls = append(calls, *call)
			mu.Unlock()
			return err
		}
	})
	cl, err := DialCluster(t.Context(), StaticNodes(addr), WithHook(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Set(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("hook saw %d calls, want 2: %+v", len(calls), calls)
	}
	if c := calls[0]; c.Op != "set" || c.Key != "k" || c.Addr != addr || c.Attempts != 1 {
		t.Errorf("set seen as %+v", c)
	}
	if c := calls[1]; c.Op != "ping" || c.Addr != "" {
		t.Errorf("ping seen as %+v", c)
	}
}

// closedClient is a Client that has been closed: every call returns ErrClosed at once, before
// the network, so what it allocates is the API's own cost.
func closedClient(opts ...Option) *Client {
	c := newClient("127.0.0.1:1", opts)
	c.closed = true
	return c
}

var nopHook = HookFunc(func(next ProcessFunc) ProcessFunc { return next })

// keyBytes and valueBytes make keys and values the compiler cannot fold into constants: a
// caller's conversions that stay on its stack unless the API lets them escape.
var keyBytes, valueBytes = []byte("user:0001"), []byte("a value")

// noHookCases pair each public call with its body without hooks, on arguments a caller builds
// on its stack.
func noHookCases(c *Client, cl *Cluster) map[string][2]func() {
	ctx := context.Background()
	return map[string][2]func(){
		"get": {func() { c.Get(ctx, string(keyBytes)) }, func() { c.get(ctx, string(keyBytes), nil) }},
		"set": {func() { c.Set(ctx, string(keyBytes), []byte(string(valueBytes)), WithTTL(time.Second)) },
			func() {
				c.writeRemote(ctx, task.OpSet, string(keyBytes), []byte(string(valueBytes)), 0, writeOpts([]WriteOption{WithTTL(time.Second)}))
			}},
		"delete":      {func() { c.Delete(ctx, string(keyBytes)) }, func() { c.delete(ctx, string(keyBytes)) }},
		"incr":        {func() { c.Incr(ctx, string(keyBytes), 1) }, func() { c.incr(ctx, string(keyBytes), 1, 0) }},
		"mget":        {func() { c.MGet(ctx, string(keyBytes)) }, func() { c.mget(ctx, []string{string(keyBytes)}) }},
		"ping":        {func() { c.Ping(ctx) }, func() { c.ping(ctx) }},
		"cluster get": {func() { cl.Get(ctx, string(keyBytes)) }, func() { cl.get(ctx, string(keyBytes), nil) }},
		"cluster set": {func() { cl.Set(ctx, string(keyBytes), []byte(string(valueBytes))) }, func() {
			k, v := string(keyBytes), []byte(string(valueBytes))
			cl.writeOn(ctx, k, nil, func(ctx context.Context, c *Client) (uint64, error) { return c.Set(ctx, k, v) })
		}},
		"cluster delete": {func() { cl.Delete(ctx, string(keyBytes)) }, func() {
			k := string(keyBytes)
			cl.do(ctx, k, true, nil, func(ctx context.Context, c *Client) error { return c.Delete(ctx, k) })
		}},
	}
}

// closedCluster is a Cluster of one node that has been closed: every call returns ErrClosed
// before any network.
func closedCluster(t testing.TB, opts ...Option) *Cluster {
	cl, err := DialCluster(context.Background(), StaticNodes("127.0.0.1:1"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	return cl
}

// TestNoHookAddsNoAllocation: without hooks a call allocates exactly what its body does (and
// lets none of the caller's arguments escape); with one it allocates more, which shows the
// measurement sees the hook path.
func TestNoHookAddsNoAllocation(t *testing.T) {
	plain := noHookCases(closedClient(), closedCluster(t))
	hooked := noHookCases(closedClient(WithHook(nopHook)), closedCluster(t, WithHook(nopHook)))
	for name, fns := range plain {
		t.Run(name, func(t *testing.T) {
			public, body := testing.AllocsPerRun(100, fns[0]), testing.AllocsPerRun(100, fns[1])
			if public != body {
				t.Errorf("without hooks %s allocates %v times, its body %v", name, public, body)
			}
			if with := testing.AllocsPerRun(100, hooked[name][0]); with <= body {
				t.Errorf("with a hook %s allocates %v times, no more than without (%v): not measured", name, with, body)
			}
			t.Logf("%s: %v allocations without hooks", name, public)
		})
	}
}

// BenchmarkHookOverhead is the cost of the hook plumbing alone, on calls that fail at once.
func BenchmarkHookOverhead(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"none", nil}, {"one", []Option{WithHook(nopHook)}}} {
		c := closedClient(bc.opts...)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				c.Get(ctx, "k")
			}
		})
	}
}
