package nameservice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership: the live pipecached nodes of a cluster are the keys P/n/<addr> under the store's
// prefix, each attached to its node's lease. A node keeps its lease alive while it runs,
// revokes it when it stops, and if it dies the lease expires after its TTL and etcd deletes the
// key: the live set is exactly what is registered.

func (e *Etcd) memberKey(addr string) string { return e.prefix + "n/" + addr }

// Register makes addr a live member until leave is called (the registration is revoked, so
// the node leaves at once) or the process dies (it drops out ttl later, when its lease
// expires). A lease lost while etcd was unreachable is granted again when etcd comes back. It
// returns after the first registration, or with its error; retries after that are logged.
func (e *Etcd) Register(addr string, ttl time.Duration) (leave func(), err error) {
	secs := max(int64((ttl+time.Second-1)/time.Second), 2) // etcd refuses TTLs shorter than its election timeout
	ctx, cancel := context.WithCancel(context.Background())
	lease, err := e.register(ctx, addr, secs)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.keepRegistered(ctx, addr, secs, lease)
	}()
	return func() { cancel(); <-done }, nil
}

// register grants a lease and puts the member key on it.
func (e *Etcd) register(ctx context.Context, addr string, secs int64) (clientv3.LeaseID, error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	g, err := e.cli.Grant(rctx, secs)
	if err != nil {
		return 0, fmt.Errorf("etcd register %s: %w", addr, err)
	}
	if _, err := e.cli.Put(rctx, e.memberKey(addr), time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("etcd register %s: %w", addr, err)
	}
	return g.ID, nil
}

// keepRegistered keeps lease alive, registering again whenever it is lost, until ctx ends.
func (e *Etcd) keepRegistered(ctx context.Context, addr string, secs int64, lease clientv3.LeaseID) {
	backoff := 100 * time.Millisecond
	for {
		if lease != 0 {
			ka, err := e.cli.KeepAlive(ctx, lease)
			if err == nil {
				for range ka { // one response per renewal; closes when the lease is lost or ctx ends
				}
			}
			if ctx.Err() != nil {
				break
			}
			e.log.Warn("membership lease lost; registering again", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if ctx.Err() != nil {
			break
		}
		var err error
		if lease, err = e.register(ctx, addr, secs); err != nil {
			backoff = min(2*backoff, 2*time.Second)
			e.log.Warn("registering as a member", "addr", addr, "err", err)
			continue
		}
		backoff = 100 * time.Millisecond
		e.log.Info("registered as a member again", "addr", addr)
	}
	if lease != 0 { // leave now rather than when the lease runs out
		rctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		if _, err := e.cli.Revoke(rctx, lease); err != nil {
			e.log.Warn("leaving the member set", "addr", addr, "err", err)
		}
		cancel()
	}
}

// Members returns the live member addresses, sorted.
func (e *Etcd) Members(ctx context.Context) ([]string, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.cli.Get(rctx, e.prefix+"n/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd members: %w", err)
	}
	addrs := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		addrs = append(addrs, strings.TrimPrefix(string(kv.Key), e.prefix+"n/"))
	}
	slices.Sort(addrs)
	return addrs, resp.Header.Revision, nil
}

// WatchMembers calls fn with the live member set now and after every change, until ctx ends.
// While etcd is unreachable fn is not called (the last set stands); a broken watch is resumed
// by reading the set again.
func (e *Etcd) WatchMembers(ctx context.Context, fn func(addrs []string)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		addrs, rev, err := e.Members(ctx)
		if err == nil {
			fn(addrs)
			err = e.watchMembers(ctx, addrs, rev, fn)
		}
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("watching members; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func (e *Etcd) watchMembers(ctx context.Context, addrs []string, rev int64, fn func([]string)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range e.cli.Watch(wctx, e.prefix+"n/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			addr := strings.TrimPrefix(string(ev.Kv.Key), e.prefix+"n/")
			i, found := slices.BinarySearch(addrs, addr)
			switch {
			case ev.Type == clientv3.EventTypeDelete && found:
				addrs = slices.Delete(addrs, i, i+1)
			case ev.Type == clientv3.EventTypePut && !found:
				addrs = slices.Insert(addrs, i, addr)
			}
		}
		fn(slices.Clone(addrs))
	}
	return errors.New("member watch closed")
}
