package client

import "context"

// Call is one call of the SDK as a Hook sees it.
type Call struct {
	// Op names the operation as the protocol does: "get", "mget", "set", "add", "replace",
	// "cas", "delete", "incr", "touch", "exec", "ping", "echo", "stats", "slowlog", "info", "subscribe",
	// "unsubscribe".
	Op string
	// Key is the call's key (a subscription's key or prefix); "" for mget, ping, echo, stats.
	Key string
	// Keys are an mget's keys (not to be modified).
	Keys []string
	// Addr is the server's host:port. For a Cluster it is set as the call goes to a node: the
	// last node it tried ("" for mget, ping and stats, which go to several nodes).
	Addr string

	// Set by the time the call returns:

	// NearCache says a Get was answered by the near cache, without a request.
	NearCache bool
	// Attempts is how many nodes a Cluster call tried (0 for a Client).
	Attempts int

	run func(ctx context.Context) error
}

// ProcessFunc runs a call: the next hook, or the call itself. Its error is the call's.
type ProcessFunc func(ctx context.Context, call *Call) error

// Hook wraps every call of a Client or Cluster, in the manner of go-redis's hooks: Process is
// called once, when the client is created, with the function that runs a call, and returns the
// function to run instead. That function can start a span or a timer, call next (with a context
// of its own if it likes), and record the call's op, key, duration and error:
//
//	func (h metrics) Process(next client.ProcessFunc) client.ProcessFunc {
//		return func(ctx context.Context, call *client.Call) error {
//			start := time.Now()
//			err := next(ctx, call)
//			h.observe(call.Op, time.Since(start), err)
//			return err
//		}
//	}
//
// A hook that does not call next stops the call, whose result is then the zero value and the
// hook's error. Hooks see the application's calls only, not the SDK's heartbeats, acks or the
// near cache's own requests. Without a hook a call costs nothing more (no allocation).
type Hook interface {
	Process(next ProcessFunc) ProcessFunc
}

// HookFunc is a function used as a Hook.
type HookFunc func(next ProcessFunc) ProcessFunc

// Process calls f.
func (f HookFunc) Process(next ProcessFunc) ProcessFunc { return f(next) }

// WithHook adds h around every call of the Client (Dial) or of the Cluster (DialCluster: each
// Cluster call is one call for the hook, whatever the nodes it tries; Call.Addr and
// Call.Attempts say which). Hooks given first are outermost.
func WithHook(h Hook) Option { return func(o *options) { o.hooks = append(o.hooks, h) } }

// withoutHooks drops the hooks: a Cluster's node clients run none (the Cluster runs them).
func withoutHooks() Option { return func(o *options) { o.hooks = nil } }

// chain composes hooks around runCall; nil if there are none.
func chain(hooks []Hook) ProcessFunc {
	if len(hooks) == 0 {
		return nil
	}
	p := ProcessFunc(runCall)
	for i := len(hooks) - 1; i >= 0; i-- {
		p = hooks[i].Process(p)
	}
	return p
}

func runCall(ctx context.Context, call *Call) error { return call.run(ctx) }

// hooked runs fn as call through the hook chain p.
func hooked[T any](ctx context.Context, p ProcessFunc, call *Call, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	call.run = func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	}
	err := p(ctx, call)
	return v, err
}

// hookedErr is hooked for a call with no result but its error.
func hookedErr(ctx context.Context, p ProcessFunc, call *Call, fn func(ctx context.Context) error) error {
	call.run = fn
	return p(ctx, call)
}
