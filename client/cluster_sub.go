package client

import (
	"context"
	"sync"
	"time"
)

// ClusterSubscription delivers the events of one key or prefix on C, from the node that owns
// the key (for a prefix: the node that owns the prefix string; every node sees every change of
// the shared store, so one node serves a whole prefix). When the owner changes (a node joined,
// left or died), the subscription moves to the new owner and C receives an EventResync with
// the subscription's key, since changes made during the move may not have been pushed.
type ClusterSubscription struct {
	C <-chan Event

	cl   *Cluster
	key  string
	opts []SubOption
	ch   chan Event
	done chan struct{}
	fwd  sync.WaitGroup // forwarders from node subscriptions to ch

	mu      sync.Mutex // guards node, sub, stopped
	node    string
	sub     *Subscription
	stopped bool
	stop    func()
}

// Subscribe subscribes to key (or, with Prefix, to every key starting with it) at the node that
// owns it, and keeps the subscription with its owner from then on.
func (cl *Cluster) Subscribe(ctx context.Context, key string, opts ...SubOption) (*ClusterSubscription, error) {
	if cl.hook != nil {
		call := &Call{Op: "subscribe", Key: key}
		return hooked(ctx, cl.hook, call, func(ctx context.Context) (*ClusterSubscription, error) {
			return cl.subscribe(ctx, key, opts, call)
		})
	}
	return cl.subscribe(ctx, key, opts, nil)
}

func (cl *Cluster) subscribe(ctx context.Context, key string, opts []SubOption, call *Call) (*ClusterSubscription, error) {
	o := subOptions{buffer: 1024}
	for _, opt := range opts {
		opt(&o)
	}
	s := &ClusterSubscription{cl: cl, key: key, opts: opts, ch: make(chan Event, o.buffer), done: make(chan struct{})}
	s.C = s.ch
	s.stop = sync.OnceFunc(s.shutdown)
	err := cl.do(ctx, key, true, call, func(ctx context.Context, c *Client) error {
		sub, err := c.Subscribe(ctx, key, opts...)
		if err == nil {
			s.attach(c.addr, sub, false)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	closed := cl.closed
	if !closed {
		cl.subs[s] = struct{}{}
	}
	cl.mu.Unlock()
	if closed {
		s.stop()
		return nil, ErrClosed
	}
	return s, nil
}

// Node returns the node the subscription is at now.
func (s *ClusterSubscription) Node() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// attach makes sub (at node) the subscription's source, forwarding its events to C (after a
// resync event if moved), and unsubscribes the previous source.
func (s *ClusterSubscription) attach(node string, sub *Subscription, moved bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		go sub.Unsubscribe(context.Background())
		return
	}
	old := s.sub
	s.node, s.sub = node, sub
	s.fwd.Add(1)
	s.mu.Unlock()
	go s.forward(sub, moved)
	if old != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			old.Unsubscribe(ctx) // best effort: the old node may be dead
		}()
	}
}

func (s *ClusterSubscription) forward(sub *Subscription, moved bool) {
	defer s.fwd.Done()
	if moved {
		select {
		case s.ch <- Event{Kind: EventResync, Key: s.key}:
		case <-s.done:
			return
		}
	}
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			select {
			case s.ch <- ev:
			case <-s.done:
				return
			}
		case <-s.done:
			return
		}
	}
}

// Unsubscribe stops the subscription and closes C.
func (s *ClusterSubscription) Unsubscribe(ctx context.Context) error {
	if p := s.cl.hook; p != nil {
		return hookedErr(ctx, p, &Call{Op: "unsubscribe", Key: s.key, Addr: s.Node()}, s.unsubscribe)
	}
	return s.unsubscribe(ctx)
}

func (s *ClusterSubscription) unsubscribe(ctx context.Context) error {
	s.cl.mu.Lock()
	delete(s.cl.subs, s)
	s.cl.mu.Unlock()
	s.mu.Lock()
	sub := s.sub
	s.mu.Unlock()
	s.stop()
	if sub != nil {
		return sub.Unsubscribe(ctx)
	}
	return nil
}

// shutdown ends the forwarders and closes C.
func (s *ClusterSubscription) shutdown() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	close(s.done)
	s.fwd.Wait()
	close(s.ch)
}

// mover moves subscriptions whose key changed owner, when the member set or a node's health
// changes, and every half second (a node that was down may be back).
func (cl *Cluster) mover(ctx context.Context) {
	defer cl.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cl.changed:
		case <-tick.C:
		}
		cl.mu.Lock()
		var moving []*ClusterSubscription
		var owners []string
		for s := range cl.subs {
			if o := cl.ownerLocked(s.key, nil); o != "" && o != s.Node() {
				moving, owners = append(moving, s), append(owners, o)
			}
		}
		cl.mu.Unlock()
		for i, s := range moving {
			cl.move(ctx, s, owners[i])
		}
	}
}

// move subscribes s at node; if that fails the node is marked down and the next round retries.
func (cl *Cluster) move(ctx context.Context, s *ClusterSubscription, node string) {
	cl.mu.Lock()
	nc := cl.conns[node]
	cl.mu.Unlock()
	if nc == nil {
		return
	}
	c, err := nc.client(cl.opts)
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, cl.o.attemptTimeout)
		var sub *Subscription
		sub, err = c.Subscribe(sctx, s.key, s.opts...)
		cancel()
		if err == nil {
			s.attach(node, sub, true)
			cl.o.logger.Info("subscription moved", "key", s.key, "node", node)
			return
		}
	}
	if nodeFailed(err) {
		nc.markDown()
	}
	cl.o.logger.Warn("moving a subscription", "key", s.key, "node", node, "err", err)
}
