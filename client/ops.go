package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Cache is what a Client (one node) and a Cluster (many nodes) both offer, for code that works
// with either. Subscribe is on each type: a Cluster's subscriptions move between nodes.
type Cache interface {
	Get(ctx context.Context, key string) (Item, error)
	MGet(ctx context.Context, keys ...string) (map[string]Item, error)
	Set(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error)
	Add(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error)
	Replace(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error)
	CAS(ctx context.Context, key string, value []byte, version uint64, opts ...WriteOption) (uint64, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64, opts ...IncrOption) (int64, error)
	Touch(ctx context.Context, key string, ttl time.Duration) error
	Exec(ctx context.Context, key, proc string, args []byte) (result []byte, version uint64, err error)
	Ping(ctx context.Context) error
	Stats(ctx context.Context) (map[string]int64, error)
	Close() error
}

var (
	_ Cache = (*Client)(nil)
	_ Cache = (*Cluster)(nil)
)

// Item is a key's value and its version. The version increases with every change of the key
// and never repeats, even across a delete and re-create; use it with CAS.
type Item struct {
	Key     string
	Value   []byte
	Version uint64
	// Stale: the server answered from its cache while its shared store (etcd) was unreachable
	// (a daemon started with -stale-reads); the value may be older than the store's.
	Stale bool
}

// MaxMGetKeys is the most keys one MGet may name (the protocol's limit).
const MaxMGetKeys = 1000

// WriteOption modifies a write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	ttl time.Duration
}

// writeOpts applies opts (called only with some: the struct they fill escapes).
func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTTL makes the key expire after d (in the cache and in the store). The server stretches it
// by up to 10% at random, so that keys written together do not expire together.
func WithTTL(d time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl = d }
}

// Get returns key's value. A missing or expired key is ErrNotFound. With WithNearCache the
// value may come from the near cache, within its staleness bound.
func (c *Client) Get(ctx context.Context, key string) (Item, error) {
	if c.hook != nil {
		call := &Call{Op: "get", Key: key, Addr: c.addr}
		return hooked(ctx, c.hook, call, func(ctx context.Context) (Item, error) { return c.get(ctx, key, call) })
	}
	return c.get(ctx, key, nil)
}

// get is Get; call (nil without hooks) learns whether the near cache answered.
func (c *Client) get(ctx context.Context, key string, call *Call) (Item, error) {
	if c.near == nil {
		return c.getRemote(ctx, key)
	}
	it, local, err := c.near.get(ctx, key)
	if call != nil {
		call.NearCache = local
	}
	return it, err
}

func (c *Client) getRemote(ctx context.Context, key string) (Item, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpGet, Key: []byte(key)}, nil)
	if err != nil {
		return Item{}, err
	}
	return Item{Key: key, Value: r.Value, Version: r.Header.Ver, Stale: r.Header.Flags&task.FlagStale != 0}, nil
}

// MGet returns the values of several keys (at most MaxMGetKeys) in one request; keys that do
// not exist are absent from the map. Against a server without the mget op it pipelines gets.
func (c *Client) MGet(ctx context.Context, keys ...string) (map[string]Item, error) {
	if c.hook != nil {
		ks := slices.Clone(keys) // what the hook holds is a copy, so keys stays off the heap without hooks
		return hooked(ctx, c.hook, &Call{Op: "mget", Keys: ks, Addr: c.addr},
			func(ctx context.Context) (map[string]Item, error) { return c.mget(ctx, ks) })
	}
	return c.mget(ctx, keys)
}

func (c *Client) mget(ctx context.Context, keys []string) (map[string]Item, error) {
	if len(keys) > wire.MaxMGetKeys {
		return nil, fmt.Errorf("%w: %d keys in one mget (at most %d)", ErrTooLarge, len(keys), wire.MaxMGetKeys)
	}
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpMGet}, wire.AppendKeys(nil, keys))
	if errors.Is(err, ErrUnknownOp) {
		return c.pipelinedGets(ctx, keys)
	}
	if err != nil {
		return nil, err
	}
	results, err := wire.SplitMGetResults(r.Value, len(keys))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInternal, err)
	}
	items := make(map[string]Item, len(keys))
	stale := r.Header.Flags&task.FlagStale != 0
	for i, res := range results {
		if res.Found {
			items[keys[i]] = Item{Key: keys[i], Value: res.Value, Version: res.Version, Stale: stale}
		}
	}
	return items, nil
}

func (c *Client) pipelinedGets(ctx context.Context, keys []string) (map[string]Item, error) {
	type result struct {
		item Item
		err  error
	}
	results := make([]result, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { results[i].item, results[i].err = c.get(ctx, k, nil) })
	}
	wg.Wait()
	items := make(map[string]Item, len(keys))
	for _, r := range results {
		switch {
		case r.err == nil:
			items[r.item.Key] = r.item
		case !isNotFound(r.err):
			return nil, r.err
		}
	}
	return items, nil
}

// write runs a write. With hooks, the key and value are copied for the hooks' closure: without
// hooks, nothing the caller passes escapes, so a caller's stack buffers stay on the stack.
func (c *Client) write(ctx context.Context, op task.Op, key string, value []byte, version uint64, opts []WriteOption) (uint64, error) {
	var o writeOptions
	if len(opts) > 0 {
		o = writeOpts(opts)
	}
	if c.hook != nil {
		k, v := strings.Clone(key), bytes.Clone(value)
		return hooked(ctx, c.hook, &Call{Op: op.String(), Key: k, Addr: c.addr}, func(ctx context.Context) (uint64, error) {
			return c.writeRemote(ctx, op, k, v, version, o)
		})
	}
	return c.writeRemote(ctx, op, key, value, version, o)
}

func (c *Client) writeRemote(ctx context.Context, op task.Op, key string, value []byte, version uint64, o writeOptions) (uint64, error) {
	h := &wire.Header{Op: op, Key: []byte(key), Ver: version, TTL: o.ttl.Milliseconds()}
	r, err := c.roundTrip(ctx, h, value)
	c.wrote(key, r, err)
	return r.Header.Ver, err
}

// wrote tells the near cache about a write of key by this client (whatever its outcome): r and
// err are its reply. Only a success says the version the write made.
func (c *Client) wrote(key string, r reply, err error) {
	if c.near != nil {
		var version uint64
		if err == nil {
			version = r.Header.Ver
		}
		c.near.written(key, version)
	}
}

// Set stores value under key and returns its new version. The write is durable in the store
// when Set returns nil.
func (c *Client) Set(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	return c.write(ctx, task.OpSet, key, value, 0, opts)
}

// Add stores value only if key does not exist (ErrExists otherwise).
func (c *Client) Add(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	return c.write(ctx, task.OpAdd, key, value, 0, opts)
}

// Replace stores value only if key exists (ErrNotFound otherwise).
func (c *Client) Replace(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	return c.write(ctx, task.OpReplace, key, value, 0, opts)
}

// CAS stores value only if key is still at version (ErrVersionMismatch otherwise).
func (c *Client) CAS(ctx context.Context, key string, value []byte, version uint64, opts ...WriteOption) (uint64, error) {
	return c.write(ctx, task.OpCAS, key, value, version, opts)
}

// Delete removes key (ErrNotFound if it does not exist).
func (c *Client) Delete(ctx context.Context, key string) error {
	if c.hook != nil {
		k := strings.Clone(key)
		return hookedErr(ctx, c.hook, &Call{Op: "delete", Key: k, Addr: c.addr},
			func(ctx context.Context) error { return c.delete(ctx, k) })
	}
	return c.delete(ctx, key)
}

func (c *Client) delete(ctx context.Context, key string) error {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpDelete, Key: []byte(key)}, nil)
	c.wrote(key, r, err)
	return err
}

// IncrOption changes what Incr does. (A value, not a function as WriteOption: Incr without
// options and without hooks allocates nothing.)
type IncrOption struct{ flags uint32 }

// MustExist makes Incr fail with ErrNotFound on a missing key (memcached's incr) instead of
// starting the counter from 0.
func MustExist() IncrOption { return IncrOption{flags: task.FlagMustExist} }

// Incr adds delta (which may be negative) to the decimal counter at key and returns the new
// value. A missing key is a counter at 0, created without a TTL (Redis's INCR), unless
// MustExist is given: then ErrNotFound. ErrNotCounter if the value is not a decimal integer,
// ErrOverflow if the sum would leave the 64-bit range.
func (c *Client) Incr(ctx context.Context, key string, delta int64, opts ...IncrOption) (int64, error) {
	var flags uint32
	for _, o := range opts {
		flags |= o.flags
	}
	if c.hook != nil {
		k, f := strings.Clone(key), flags
		return hooked(ctx, c.hook, &Call{Op: "incr", Key: k, Addr: c.addr},
			func(ctx context.Context) (int64, error) { return c.incr(ctx, k, delta, f) })
	}
	return c.incr(ctx, key, delta, flags)
}

func (c *Client) incr(ctx context.Context, key string, delta int64, flags uint32) (int64, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpIncr, Key: []byte(key), Delta: delta, Flags: flags}, nil)
	c.wrote(key, r, err)
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(string(r.Value), 10, 64)
	if perr != nil {
		return 0, fmt.Errorf("%w: counter value %q", ErrInternal, r.Value)
	}
	return n, nil
}

// Touch gives key a new TTL (0: never expire) without changing its value or version.
func (c *Client) Touch(ctx context.Context, key string, ttl time.Duration) error {
	if c.hook != nil {
		k := strings.Clone(key)
		return hookedErr(ctx, c.hook, &Call{Op: "touch", Key: k, Addr: c.addr},
			func(ctx context.Context) error { return c.touch(ctx, k, ttl) })
	}
	return c.touch(ctx, key, ttl)
}

func (c *Client) touch(ctx context.Context, key string, ttl time.Duration) error {
	_, err := c.roundTrip(ctx, &wire.Header{Op: task.OpTouch, Key: []byte(key), TTL: ttl.Milliseconds()}, nil)
	return err
}

// Stats returns the server's counters (gets, hits, misses, store loads and writes, items, bytes...).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	if c.hook != nil {
		return hooked(ctx, c.hook, &Call{Op: "stats", Addr: c.addr}, c.stats)
	}
	return c.stats(ctx)
}

func (c *Client) stats(ctx context.Context) (map[string]int64, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpStats}, nil)
	if err != nil {
		return nil, err
	}
	stats := map[string]int64{}
	if err := json.Unmarshal(r.Value, &stats); err != nil {
		return nil, fmt.Errorf("%w: stats: %w", ErrInternal, err)
	}
	return stats, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	if c.hook != nil {
		return hookedErr(ctx, c.hook, &Call{Op: "ping", Addr: c.addr}, c.ping)
	}
	return c.ping(ctx)
}

func (c *Client) ping(ctx context.Context) error {
	_, err := c.roundTrip(ctx, &wire.Header{Op: task.OpPing}, nil)
	return err
}

// Echo sends value through the server's pipeline and returns what came back.
func (c *Client) Echo(ctx context.Context, value []byte) ([]byte, error) {
	if c.hook != nil {
		v := bytes.Clone(value)
		return hooked(ctx, c.hook, &Call{Op: "echo", Addr: c.addr},
			func(ctx context.Context) ([]byte, error) { return c.echo(ctx, v) })
	}
	return c.echo(ctx, value)
}

func (c *Client) echo(ctx context.Context, value []byte) ([]byte, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpEcho}, value)
	return r.Value, err
}

func isNotFound(err error) bool {
	se, ok := err.(*ServerError)
	return ok && se.Code == CodeNotFound
}
