package nameservice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Etcd is the store shared by several pipecached nodes: an etcd cluster, through the official
// client. Layout under the configured prefix P:
//
//	P/d/<key>   a record: 8 bytes big-endian expiry (unix ms, 0: never), then the value
//	P/n/<addr>  a live node (see Register), attached to the node's lease
//
// A record's version is its etcd mod revision, so versions are global and increase across all
// nodes and all etcd clients; the caller's version is replaced by the revision in Commit. A
// record with an expiry is attached to an etcd lease shared by every record expiring in the
// same second, so etcd deletes it (a read checks the exact expiry first). A Commit is one etcd
// transaction per 128 writes (etcd's default limit of operations per transaction).
type Etcd struct {
	cli     *clientv3.Client
	prefix  string // ends with "/"
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	leases map[int64]clientv3.LeaseID // expiry second -> lease

	// watched is the revision up to which Watch has delivered every change (from its events
	// and etcd's progress notifications); Fresh compares it with etcd's current revision.
	watched atomic.Int64
}

// maxTxnOps is etcd's default --max-txn-ops.
const maxTxnOps = 128

// EtcdURL parses a store URL of the form etcd://host1:2379,host2:2379/prefix into endpoints
// and a key prefix (default "pipecache").
func EtcdURL(s string) (endpoints []string, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", fmt.Errorf("store url %q: %w", s, err)
	}
	if u.Scheme != "etcd" || u.Host == "" {
		return nil, "", fmt.Errorf("store url %q: want etcd://host:port[,host:port...]/prefix", s)
	}
	for _, h := range strings.Split(u.Host, ",") {
		endpoints = append(endpoints, "http://"+h)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix == "" {
		prefix = "pipecache"
	}
	return endpoints, prefix, nil
}

// OpenEtcd connects to the etcd cluster named by an etcd:// URL. timeout bounds each request
// (default 3 s); the connection itself is lazy, so a cluster that is down fails requests, not
// OpenEtcd, and the store recovers by itself when etcd comes back.
func OpenEtcd(storeURL string, timeout time.Duration, log *slog.Logger) (*Etcd, error) {
	endpoints, prefix, err := EtcdURL(storeURL)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: timeout,
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: timeout,
		Logger: zapToSlog(log.With("component", "etcd-client"))})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	return &Etcd{cli: cli, prefix: "/" + prefix + "/", timeout: timeout, log: log, leases: map[int64]clientv3.LeaseID{}}, nil
}

// Client returns the etcd client (membership shares it).
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Prefix returns the key prefix, with its trailing slash.
func (e *Etcd) Prefix() string { return e.prefix }

func (e *Etcd) dataKey(key string) string { return e.prefix + "d/" + key }

func (e *Etcd) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.timeout)
}

func encodeEtcd(r Record) string {
	b := make([]byte, 8+len(r.Value))
	binary.BigEndian.PutUint64(b, uint64(r.ExpireAt))
	copy(b[8:], r.Value)
	return string(b)
}

func decodeEtcd(b []byte, modRev int64) (Record, error) {
	if len(b) < 8 {
		return Record{}, ErrCorrupt
	}
	return Record{Value: append([]byte(nil), b[8:]...), Version: uint64(modRev),
		ExpireAt: int64(binary.BigEndian.Uint64(b))}, nil
}

// Get implements Store.
func (e *Etcd) Get(key string, nowMs int64) (Record, bool, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.cli.Get(ctx, e.dataKey(key))
	if err != nil {
		return Record{}, false, fmt.Errorf("etcd get: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, false, nil
	}
	r, err := decodeEtcd(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil || r.Expired(nowMs) {
		return Record{}, false, err
	}
	return r, true, nil
}

// refusedByEtcd reports whether err is etcd (or its client) refusing the request itself: too
// large or too many operations, rather than etcd being out of reach.
func refusedByEtcd(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrTooManyOps) {
		return true
	}
	switch status.Code(err) {
	case codes.ResourceExhausted, codes.InvalidArgument: // the gRPC client's own message limit
		return true
	}
	return false
}

// maxTxnBytes bounds the values in one transaction, well under etcd's default request limit
// (--max-request-bytes, 1.5 MiB); a larger write goes alone.
const maxTxnBytes = 1 << 20

// Commit implements Store: the writes in transactions of at most 128 writes and maxTxnBytes,
// each write's version set to the revision of its transaction. Two writes of one key never
// share a transaction. A write etcd refuses alone (too large) gets an Err wrapping ErrInvalid;
// if a transaction fails after others succeeded, its writes and the rest get Err.
func (e *Etcd) Commit(writes []Write) error {
	applied := false
	for len(writes) > 0 {
		n, size, seen := 0, 0, map[string]bool{}
		for n < len(writes) && n < maxTxnOps && !seen[writes[n].Key] &&
			(n == 0 || size+len(writes[n].Record.Value) <= maxTxnBytes) {
			seen[writes[n].Key] = true
			size += len(writes[n].Record.Value)
			n++
		}
		err := e.commitTxn(writes[:n])
		switch {
		case err == nil:
			applied = true
		case n == 1 && refusedByEtcd(err):
			writes[0].Err = fmt.Errorf("%w: %w", ErrInvalid, err)
		case !applied:
			return err
		default:
			for i := range writes {
				writes[i].Err = err
			}
			return nil
		}
		writes = writes[n:]
	}
	return nil
}

func (e *Etcd) commitTxn(writes []Write) error {
	ops := make([]clientv3.Op, 0, len(writes))
	for _, w := range writes {
		if w.Delete {
			ops = append(ops, clientv3.OpDelete(e.dataKey(w.Key)))
			continue
		}
		var opts []clientv3.OpOption
		if w.Record.ExpireAt != 0 {
			lease, err := e.leaseFor(w.Record.ExpireAt)
			if err != nil {
				return err
			}
			opts = append(opts, clientv3.WithLease(lease))
		}
		ops = append(ops, clientv3.OpPut(e.dataKey(w.Key), encodeEtcd(w.Record), opts...))
	}
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		if !refusedByEtcd(err) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err) // one by one would not do better
		}
		return fmt.Errorf("etcd commit of %d writes: %w", len(writes), err)
	}
	for i := range writes {
		writes[i].Record.Version = uint64(resp.Header.Revision)
	}
	return nil
}

// leaseFor returns the lease shared by records expiring in the same second as expireAtMs,
// granting it if needed. The lease outlives the records by up to a second; reads check the
// exact expiry.
func (e *Etcd) leaseFor(expireAtMs int64) (clientv3.LeaseID, error) {
	sec := expireAtMs/1000 + 1
	e.mu.Lock()
	id, ok := e.leases[sec]
	e.mu.Unlock()
	if ok {
		return id, nil
	}
	now := time.Now().Unix()
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.cli.Grant(ctx, max(sec-now, 1))
	if err != nil {
		return 0, fmt.Errorf("etcd lease: %w: %w", ErrUnavailable, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.leases { // forget the leases of seconds gone by
		if s < now {
			delete(e.leases, s)
		}
	}
	if prev, ok := e.leases[sec]; ok { // granted meanwhile by another commit
		return prev, nil
	}
	e.leases[sec] = resp.ID
	return resp.ID, nil
}

// MaxVersion implements Store: etcd's current revision.
func (e *Etcd) MaxVersion() (uint64, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.cli.Get(ctx, e.prefix+"d/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd revision: %w", err)
	}
	return uint64(resp.Header.Revision), nil
}

// Scan implements Store, reading pages of 1,000 keys at one revision.
func (e *Etcd) Scan(prefix, start string, nowMs int64, fn func(key string, r Record) bool) error {
	from, end := e.dataKey(prefix), clientv3.GetPrefixRangeEnd(e.dataKey(prefix))
	if start > prefix {
		from = e.dataKey(start)
	}
	var rev int64
	for {
		ctx, cancel := e.ctx()
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := e.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("etcd scan: %w", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			r, err := decodeEtcd(kv.Value, kv.ModRevision)
			if err != nil {
				return err
			}
			if !r.Expired(nowMs) && !fn(strings.TrimPrefix(string(kv.Key), e.prefix+"d/"), r) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// SweepExpired implements Store: etcd's leases delete expired records, so there is nothing to do.
func (e *Etcd) SweepExpired(int64, int) (int, error) { return 0, nil }

// Close implements Store.
func (e *Etcd) Close() error { return e.cli.Close() }

// Change is one change in the store made by anyone (this node, another node, etcdctl).
type Change struct {
	Key    string
	Delete bool
	Record Record // for a put; Version is set for deletes too
}

// Watch calls fn with every change of the data after revision after, in order, until ctx ends.
// A watch that breaks is resumed from the last revision seen; if etcd has compacted that
// revision away, fn is called with resync true (changes were missed: drop what you cached) and
// the watch continues from the compaction point (the oldest revision etcd still holds).
func (e *Etcd) Watch(ctx context.Context, after uint64, fn func(changes []Change, resync bool)) {
	rev := int64(after)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := e.cli.Watch(wctx, e.prefix+"d/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range ch {
			if resp.CompactRevision != 0 {
				e.log.Warn("etcd compacted past the change feed: resync", "from", rev, "compacted", resp.CompactRevision)
				rev = resp.CompactRevision - 1
				fn(nil, true)
				break
			}
			if err := resp.Err(); err != nil {
				e.log.Warn("etcd watch broke; resuming", "from", rev, "err", err)
				break
			}
			if resp.IsProgressNotify() { // nothing missed up to the header's revision
				rev = max(rev, resp.Header.Revision)
				e.watched.Store(rev)
				continue
			}
			changes := make([]Change, 0, len(resp.Events))
			for _, ev := range resp.Events {
				c := Change{Key: strings.TrimPrefix(string(ev.Kv.Key), e.prefix+"d/"), Delete: ev.Type == clientv3.EventTypeDelete}
				if c.Delete {
					c.Record.Version = uint64(ev.Kv.ModRevision)
				} else if r, err := decodeEtcd(ev.Kv.Value, ev.Kv.ModRevision); err == nil {
					c.Record = r
				} else {
					e.log.Warn("corrupt record in etcd: treated as deleted", "key", string(ev.Kv.Key))
					c.Delete, c.Record.Version = true, uint64(ev.Kv.ModRevision)
				}
				changes = append(changes, c)
				rev = ev.Kv.ModRevision
			}
			if len(changes) > 0 {
				fn(changes, false)
			}
			e.watched.Store(rev)
			backoff = 100 * time.Millisecond
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second) // a node serves no fresh reads until it resumes
		}
	}
}

// Fresh reports whether the change feed is known to be complete up to etcd's present: etcd
// answers a linearizable read (a quorum is up), and Watch has delivered everything up to that
// read's revision (asking etcd for a progress notification if no change came since). A false
// answer means reads of cached copies may be stale.
func (e *Etcd) Fresh(ctx context.Context) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.cli.Get(rctx, e.prefix+"d/", clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("etcd: %w", err)
	}
	now := resp.Header.Revision
	if e.watched.Load() >= now {
		return true, nil
	}
	// The watch's stream is keyed by its context's metadata: ask on the same one.
	if err := e.cli.RequestProgress(clientv3.WithRequireLeader(rctx)); err != nil {
		return false, fmt.Errorf("etcd progress: %w", err)
	}
	for e.watched.Load() < now {
		select {
		case <-rctx.Done():
			return false, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true, nil
}
