package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The Cluster's operations: each runs on its key's node (Cluster.do), through the hooks if
// there are any (one hook call per Cluster call, whatever the nodes it tries).

// Get returns key's value from the node that owns it.
func (cl *Cluster) Get(ctx context.Context, key string) (Item, error) {
	if cl.hook != nil {
		call := &Call{Op: "get", Key: key}
		return hooked(ctx, cl.hook, call, func(ctx context.Context) (Item, error) { return cl.get(ctx, key, call) })
	}
	return cl.get(ctx, key, nil)
}

func (cl *Cluster) get(ctx context.Context, key string, call *Call) (Item, error) {
	var it Item
	err := cl.do(ctx, key, true, call, func(ctx context.Context, c *Client) error {
		var err error
		it, err = c.get(ctx, key, call)
		return err
	})
	return it, err
}

// MGet returns the values of several keys, asking each owning node for its keys in parallel.
func (cl *Cluster) MGet(ctx context.Context, keys ...string) (map[string]Item, error) {
	if cl.hook != nil {
		ks := slices.Clone(keys)
		return hooked(ctx, cl.hook, &Call{Op: "mget", Keys: ks},
			func(ctx context.Context) (map[string]Item, error) { return cl.mget(ctx, ks) })
	}
	return cl.mget(ctx, keys)
}

func (cl *Cluster) mget(ctx context.Context, keys []string) (map[string]Item, error) {
	groups := map[string][]string{}
	cl.mu.Lock()
	for _, k := range keys {
		o := cl.ownerLocked(k, nil)
		groups[o] = append(groups[o], k)
	}
	cl.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	items := make(map[string]Item, len(keys))
	var firstErr error
	for _, ks := range groups {
		wg.Go(func() {
			var got map[string]Item
			err := cl.do(ctx, ks[0], true, nil, func(ctx context.Context, c *Client) (err error) {
				got, err = c.mget(ctx, ks)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			for k, it := range got {
				items[k] = it
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return items, nil
}

// hookedWrite runs a write through the hooks; fn holds copies of the caller's arguments, so
// that without hooks nothing the caller passes escapes.
func (cl *Cluster) hookedWrite(ctx context.Context, op, key string, fn func(ctx context.Context, c *Client) (uint64, error)) (uint64, error) {
	call := &Call{Op: op, Key: key}
	return hooked(ctx, cl.hook, call, func(ctx context.Context) (uint64, error) { return cl.writeOn(ctx, key, call, fn) })
}

func (cl *Cluster) writeOn(ctx context.Context, key string, call *Call, fn func(ctx context.Context, c *Client) (uint64, error)) (uint64, error) {
	var v uint64
	err := cl.do(ctx, key, true, call, func(ctx context.Context, c *Client) error {
		var err error
		v, err = fn(ctx, c)
		return err
	})
	return v, err
}

// Set stores value under key; see Client.Set.
func (cl *Cluster) Set(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	if cl.hook != nil {
		k, v, o := strings.Clone(key), bytes.Clone(value), slices.Clone(opts)
		return cl.hookedWrite(ctx, "set", k, func(ctx context.Context, c *Client) (uint64, error) { return c.Set(ctx, k, v, o...) })
	}
	return cl.writeOn(ctx, key, nil, func(ctx context.Context, c *Client) (uint64, error) { return c.Set(ctx, key, value, opts...) })
}

// Add stores value only if key does not exist; see Client.Add.
func (cl *Cluster) Add(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	if cl.hook != nil {
		k, v, o := strings.Clone(key), bytes.Clone(value), slices.Clone(opts)
		return cl.hookedWrite(ctx, "add", k, func(ctx context.Context, c *Client) (uint64, error) { return c.Add(ctx, k, v, o...) })
	}
	return cl.writeOn(ctx, key, nil, func(ctx context.Context, c *Client) (uint64, error) { return c.Add(ctx, key, value, opts...) })
}

// Replace stores value only if key exists; see Client.Replace.
func (cl *Cluster) Replace(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	if cl.hook != nil {
		k, v, o := strings.Clone(key), bytes.Clone(value), slices.Clone(opts)
		return cl.hookedWrite(ctx, "replace", k, func(ctx context.Context, c *Client) (uint64, error) { return c.Replace(ctx, k, v, o...) })
	}
	return cl.writeOn(ctx, key, nil, func(ctx context.Context, c *Client) (uint64, error) { return c.Replace(ctx, key, value, opts...) })
}

// CAS stores value only if key is still at version; see Client.CAS.
func (cl *Cluster) CAS(ctx context.Context, key string, value []byte, version uint64, opts ...WriteOption) (uint64, error) {
	if cl.hook != nil {
		k, v, o := strings.Clone(key), bytes.Clone(value), slices.Clone(opts)
		return cl.hookedWrite(ctx, "cas", k, func(ctx context.Context, c *Client) (uint64, error) { return c.CAS(ctx, k, v, version, o...) })
	}
	return cl.writeOn(ctx, key, nil, func(ctx context.Context, c *Client) (uint64, error) { return c.CAS(ctx, key, value, version, opts...) })
}

// hookedKeyed runs an operation on key's node with only an error for a result, through the
// hooks; fn holds copies of the caller's arguments.
func (cl *Cluster) hookedKeyed(ctx context.Context, op, key string, idempotent bool, fn func(ctx context.Context, c *Client) error) error {
	call := &Call{Op: op, Key: key}
	return hookedErr(ctx, cl.hook, call, func(ctx context.Context) error { return cl.do(ctx, key, idempotent, call, fn) })
}

// Delete removes key; see Client.Delete.
func (cl *Cluster) Delete(ctx context.Context, key string) error {
	if cl.hook != nil {
		k := strings.Clone(key)
		return cl.hookedKeyed(ctx, "delete", k, true, func(ctx context.Context, c *Client) error { return c.Delete(ctx, k) })
	}
	return cl.do(ctx, key, true, nil, func(ctx context.Context, c *Client) error { return c.Delete(ctx, key) })
}

// Touch gives key a new TTL; see Client.Touch.
func (cl *Cluster) Touch(ctx context.Context, key string, ttl time.Duration) error {
	if cl.hook != nil {
		k := strings.Clone(key)
		return cl.hookedKeyed(ctx, "touch", k, true, func(ctx context.Context, c *Client) error { return c.Touch(ctx, k, ttl) })
	}
	return cl.do(ctx, key, true, nil, func(ctx context.Context, c *Client) error { return c.Touch(ctx, key, ttl) })
}

// Incr adds delta to the counter at key; see Client.Incr. It is retried on another node only
// if it was never sent.
func (cl *Cluster) Incr(ctx context.Context, key string, delta int64, opts ...IncrOption) (int64, error) {
	if cl.hook != nil {
		k := strings.Clone(key)
		var n int64
		err := cl.hookedKeyed(ctx, "incr", k, false, func(ctx context.Context, c *Client) error {
			var err error
			n, err = c.Incr(ctx, k, delta, opts...)
			return err
		})
		return n, err
	}
	var n int64
	err := cl.do(ctx, key, false, nil, func(ctx context.Context, c *Client) error {
		var err error
		n, err = c.Incr(ctx, key, delta, opts...)
		return err
	})
	return n, err
}

// Ping checks that every node of the member set answers, asking them in parallel. Its error
// joins one error per node that did not ("node ADDR: ..."; test with errors.Is as usual), or
// is ErrUnavailable if the member set is empty. A Cluster keeps serving while some nodes are
// down (their keys go to other nodes): Ping says whether all are up.
func (cl *Cluster) Ping(ctx context.Context) error {
	if cl.hook != nil {
		return hookedErr(ctx, cl.hook, &Call{Op: "ping"}, cl.ping)
	}
	return cl.ping(ctx)
}

func (cl *Cluster) ping(ctx context.Context) error {
	return cl.eachNode(ctx, func(ctx context.Context, _ string, c *Client) error { return c.ping(ctx) })
}

// Stats returns the counters of every node of the member set, summed: each key's value is the
// sum of the nodes' values (so a gauge such as items is the cluster's total, and a flag such
// as store_unreachable counts the nodes that set it). NodeStats has them per node. If some
// nodes do not answer, the sum covers those that did and the error names the others.
func (cl *Cluster) Stats(ctx context.Context) (map[string]int64, error) {
	if cl.hook != nil {
		return hooked(ctx, cl.hook, &Call{Op: "stats"}, cl.stats)
	}
	return cl.stats(ctx)
}

func (cl *Cluster) stats(ctx context.Context) (map[string]int64, error) {
	per, err := cl.NodeStats(ctx)
	if len(per) == 0 && err != nil {
		return nil, err
	}
	sum := map[string]int64{}
	for _, st := range per {
		for k, v := range st {
			sum[k] += v
		}
	}
	return sum, err
}

// NodeStats returns each node's counters (Client.Stats), by node address, asking the nodes of
// the member set in parallel. If some nodes do not answer, the map holds those that did and the
// error names the others. It is not a hooked call of its own: Stats calls it.
func (cl *Cluster) NodeStats(ctx context.Context) (map[string]map[string]int64, error) {
	var mu sync.Mutex
	per := map[string]map[string]int64{}
	err := cl.eachNode(ctx, func(ctx context.Context, addr string, c *Client) error {
		st, err := c.stats(ctx)
		if err == nil {
			mu.Lock()
			per[addr] = st
			mu.Unlock()
		}
		return err
	})
	return per, err
}

// eachNode runs fn on the client of every node of the member set, in parallel, and joins their
// errors, each prefixed with its node.
func (cl *Cluster) eachNode(ctx context.Context, fn func(ctx context.Context, addr string, c *Client) error) error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return ErrClosed
	}
	conns := make([]*nodeConn, 0, len(cl.ring.addrs))
	for _, a := range cl.ring.addrs {
		conns = append(conns, cl.conns[a])
	}
	cl.mu.Unlock()
	if len(conns) == 0 {
		return fmt.Errorf("%w: no live node", ErrUnavailable)
	}
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, nc := range conns {
		wg.Go(func() {
			c, err := nc.client(cl.opts)
			if err == nil {
				err = fn(ctx, nc.addr, c)
			}
			if err != nil {
				errs[i] = fmt.Errorf("node %s: %w", nc.addr, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
