package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Nodes is where a Cluster learns the set of live pipecached nodes: a static list, or the
// member set the nodes keep in etcd (package client/etcdnodes).
type Nodes interface {
	// Watch calls fn with the node set now, then again whenever it changes, until ctx ends.
	// It returns once fn has been called, or with an error if the set cannot be read.
	Watch(ctx context.Context, fn func(addrs []string)) error
}

// StaticNodes is a fixed node set. A node that is down is skipped (its keys go to the node
// next in their order) until it answers again.
func StaticNodes(addrs ...string) Nodes { return staticNodes(addrs) }

type staticNodes []string

func (s staticNodes) Watch(_ context.Context, fn func([]string)) error {
	if len(s) == 0 {
		return errors.New("no nodes")
	}
	fn(s)
	return nil
}

// Cluster is a client of several pipecached nodes sharing one store (etcd). Each key is served
// by one node, chosen by rendezvous hashing over the live nodes (see rendezvous.go for why),
// so each node caches its share of the keys. A request to a node that has died, or that does
// not answer within the attempt timeout, is retried on the key's next node; the dead node is
// skipped until its connection is back, or dropped when it leaves the member set.
// Subscriptions follow their keys from node to node.
//
// A retried write may have been applied by the first node before it died: Set, Delete and
// Touch are safe to repeat; a repeated Add, Replace or CAS may report ErrExists, ErrNotFound
// or ErrVersionMismatch about its own first attempt; Incr is never retried once sent.
type Cluster struct {
	opts    []Option
	o       options
	cancel  context.CancelFunc
	changed chan struct{} // the member set or a node's health changed: move subscriptions

	mu     sync.Mutex // guards everything below
	ring   *ring
	conns  map[string]*nodeConn
	subs   map[*ClusterSubscription]struct{}
	closed bool
	wg     sync.WaitGroup

	hook ProcessFunc // the WithHook chain, run once per Cluster call; nil without hooks
}

// nodeConn is the client of one node, dialled on first use.
type nodeConn struct {
	addr    string
	mu      sync.Mutex
	c       *Client
	dialing chan struct{} // closed when a dial in progress ends
	downAt  time.Time     // when the node last failed a request or a dial
	gone    bool          // the node left the member set: its client is closed
}

// errNodeLeft: the node left the member set between picking it and using it.
var errNodeLeft = fmt.Errorf("%w: the node left the cluster", errNotSent)

// WithAttemptTimeout sets how long a Cluster waits on a node that has gone silent (default
// 1 s): a node that has sent nothing for that long, while a request waits, is taken for dead
// and the request goes to the key's next node. A node that is alive but slow (its store is
// slow) is waited for: retrying elsewhere would not help. (It is the silence timeout of the
// Cluster's clients: see WithSilenceTimeout.)
func WithAttemptTimeout(d time.Duration) Option { return func(o *options) { o.attemptTimeout = d } }

// maxAttempts is how many nodes a request tries.
const maxAttempts = 3

// downFor is how long a node that failed is skipped before it is tried again (unless its
// connection is back sooner).
const downFor = time.Second

// DialCluster learns the node set from nodes and returns a client of the cluster. Node
// connections are opened on first use, with opts (token, heartbeat, near cache...); hooks
// (WithHook) run around each Cluster call, not in the node clients.
func DialCluster(ctx context.Context, nodes Nodes, opts ...Option) (*Cluster, error) {
	o := options{attemptTimeout: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	// Each node's client watches for its server going silent (WithSilenceTimeout): it tells a
	// dead node from a slow one, and costs nothing per request, unlike a context with a
	// timeout (which every request would register with its shared parent context).
	opts = append(opts[:len(opts):len(opts)], WithSilenceTimeout(o.attemptTimeout), withoutHooks(), failFast())
	wctx, cancel := context.WithCancel(context.Background())
	cl := &Cluster{opts: opts, o: o, cancel: cancel, changed: make(chan struct{}, 1), ring: newRing(nil),
		conns: map[string]*nodeConn{}, subs: map[*ClusterSubscription]struct{}{}, hook: chain(o.hooks)}
	first := make(chan struct{})
	var once sync.Once
	err := nodes.Watch(wctx, func(addrs []string) {
		cl.setMembers(addrs)
		once.Do(func() { close(first) })
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pipecache: cluster nodes: %w", err)
	}
	select {
	case <-first:
	case <-ctx.Done():
		cancel()
		return nil, ctxError(ctx, "cluster nodes")
	}
	cl.wg.Add(1)
	go cl.mover(wctx)
	return cl, nil
}

// setMembers installs a new member set, closing the clients of nodes that left.
func (cl *Cluster) setMembers(addrs []string) {
	r := newRing(addrs)
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return
	}
	cl.ring = r
	var gone []*nodeConn
	for a, nc := range cl.conns {
		if !r.has(a) {
			gone = append(gone, nc)
			delete(cl.conns, a)
		}
	}
	for _, a := range r.addrs {
		if cl.conns[a] == nil {
			cl.conns[a] = &nodeConn{addr: a}
		}
	}
	cl.mu.Unlock()
	cl.o.logger.Info("cluster members", "nodes", r.addrs, "left", len(gone))
	for _, nc := range gone {
		go nc.close()
	}
	cl.poke()
}

func (r *ring) has(addr string) bool {
	for _, a := range r.addrs {
		if a == addr {
			return true
		}
	}
	return false
}

// poke tells the mover to look at the subscriptions.
func (cl *Cluster) poke() {
	select {
	case cl.changed <- struct{}{}:
	default:
	}
}

// Nodes returns the live node set as the cluster client knows it.
func (cl *Cluster) Nodes() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]string(nil), cl.ring.addrs...)
}

// Owner returns the node that serves key now: the live node that scores highest for it,
// skipping nodes that are down.
func (cl *Cluster) Owner(key string) string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.ownerLocked(key, nil)
}

// ownerLocked picks the node for key among those not tried yet: the best one that is not down,
// or if all are down the best one regardless (a node marked down may be back; failing without
// trying helps nobody).
func (cl *Cluster) ownerLocked(key string, tried []string) string {
	now := time.Now()
	if a := cl.ring.owner(key, func(a string) bool { return slices.Contains(tried, a) || cl.conns[a].down(now) }); a != "" {
		return a
	}
	return cl.ring.owner(key, func(a string) bool { return slices.Contains(tried, a) })
}

// down reports whether the node is to be skipped: its connection is lost (the client is
// redialling it), or a request or dial failed less than downFor ago.
func (nc *nodeConn) down(now time.Time) bool {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.c != nil && !nc.c.Connected() {
		return true
	}
	return !nc.downAt.IsZero() && now.Sub(nc.downAt) < downFor
}

// markDown records a failure; it reports whether the node was taken for up until now.
func (nc *nodeConn) markDown() (wasUp bool) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	now := time.Now()
	wasUp = nc.downAt.IsZero() || now.Sub(nc.downAt) >= downFor
	nc.downAt = now
	return wasUp
}

// client returns the node's client, dialling it if needed (one dial at a time).
func (nc *nodeConn) client(opts []Option) (*Client, error) {
	nc.mu.Lock()
	if ch := nc.dialing; nc.c == nil && ch != nil {
		nc.mu.Unlock()
		<-ch
		nc.mu.Lock()
		if nc.c == nil && !nc.gone { // that dial failed: so does this call
			nc.mu.Unlock()
			return nil, fmt.Errorf("%w: dialling %s failed", errNotSent, nc.addr)
		}
	}
	if nc.gone {
		nc.mu.Unlock()
		return nil, errNodeLeft
	}
	if c := nc.c; c != nil {
		nc.mu.Unlock()
		return c, nil
	}
	ch := make(chan struct{})
	nc.dialing = ch
	nc.mu.Unlock()
	c, err := Dial(nc.addr, opts...)
	nc.mu.Lock()
	nc.dialing = nil
	gone := nc.gone
	switch {
	case err != nil:
		nc.downAt = time.Now()
		err = fmt.Errorf("%w: %v", errNotSent, err) // nothing was sent: safe to try elsewhere
	case gone:
		err = errNodeLeft
	default:
		nc.c = c
	}
	nc.mu.Unlock()
	close(ch)
	if err != nil {
		if gone && c != nil {
			c.Close()
		}
		return nil, err
	}
	return c, nil
}

// close closes the node's client for good (the node left the member set).
func (nc *nodeConn) close() {
	nc.mu.Lock()
	c := nc.c
	nc.gone = true
	nc.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// left reports whether the node left the member set.
func (nc *nodeConn) left() bool {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return nc.gone
}

// sentAndLost reports whether err means the request may have reached the node (so that
// repeating it elsewhere may apply it twice) and no answer came.
func sentAndLost(err error) bool { return !errors.Is(err, errNotSent) }

// nodeFailed reports whether err says nothing about the request, only that the node did not
// answer: then the request is retried on the next node. An error reply from a node (even
// "unavailable": the store is down) is the node's answer and is returned as it is.
func nodeFailed(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		return false
	}
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}

// do runs fn on the node that owns key, and on the next ones in the key's order while nodes
// fail (at most maxAttempts). idempotent says fn may be repeated after it was sent. call (nil
// without hooks) learns the nodes tried.
func (cl *Cluster) do(ctx context.Context, key string, idempotent bool, call *Call, fn func(ctx context.Context, c *Client) error) error {
	var triedBuf [maxAttempts]string
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 0; attempt < maxAttempts && ctx.Err() == nil; attempt++ {
		cl.mu.Lock()
		if cl.closed {
			cl.mu.Unlock()
			return ErrClosed
		}
		addr := cl.ownerLocked(key, tried)
		nc := cl.conns[addr]
		cl.mu.Unlock()
		if nc == nil {
			break
		}
		tried = append(tried, addr)
		if call != nil {
			call.Addr, call.Attempts = addr, len(tried)
		}
		c, err := nc.client(cl.opts)
		if err == nil {
			err = fn(ctx, c)
			if errors.Is(err, ErrClosed) && nc.left() {
				err = errNodeLeft // closed under us because the node left: try the next one
			}
			if !nodeFailed(err) || ctx.Err() != nil {
				return err // the node's answer, or the caller gave up: says nothing about the node
			}
		}
		if nc.markDown() {
			cl.o.logger.Warn("node failed; its keys go to their next nodes", "node", addr, "err", err)
		}
		cl.poke()
		lastErr = fmt.Errorf("node %s: %w", addr, err)
		if !idempotent && err != nil && sentAndLost(err) {
			return lastErr
		}
	}
	if lastErr == nil {
		if ctx.Err() != nil {
			return ctxError(ctx, "cluster")
		}
		return fmt.Errorf("%w: no live node", ErrUnavailable)
	}
	return lastErr
}

// Close closes every node connection and subscription.
func (cl *Cluster) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	conns := cl.conns
	cl.conns = map[string]*nodeConn{}
	subs := cl.subs
	cl.subs = map[*ClusterSubscription]struct{}{}
	cl.mu.Unlock()
	cl.cancel()
	cl.wg.Wait()
	for s := range subs {
		s.stop()
	}
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Go(nc.close)
	}
	wg.Wait()
	return nil
}
