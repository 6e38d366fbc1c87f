package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
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

// WriteOption modifies a write.
type WriteOption func(*wire.Header)

// WithTTL makes the key expire after d (in the cache and in the store). The server stretches it
// by up to 10% at random, so that keys written together do not expire together.
func WithTTL(d time.Duration) WriteOption {
	return func(h *wire.Header) { h.TTL = d.Milliseconds() }
}

// Get returns key's value. A missing or expired key is ErrNotFound. With WithNearCache the
// value may come from the near cache, within its staleness bound.
func (c *Client) Get(ctx context.Context, key string) (Item, error) {
	if c.near != nil {
		return c.near.get(ctx, key)
	}
	return c.getRemote(ctx, key)
}

func (c *Client) getRemote(ctx context.Context, key string) (Item, error) {
	r, err := c.Do(ctx, &wire.Header{Op: task.OpGet, Key: []byte(key)}, nil)
	if err != nil {
		return Item{}, err
	}
	return Item{Key: key, Value: r.Value, Version: r.Header.Ver, Stale: r.Header.Flags&task.FlagStale != 0}, nil
}

// MGet returns the values of several keys (at most wire.MaxMGetKeys) in one request; keys that
// do not exist are absent from the map. Against a server without the mget op it pipelines gets.
func (c *Client) MGet(ctx context.Context, keys ...string) (map[string]Item, error) {
	if len(keys) > wire.MaxMGetKeys {
		return nil, fmt.Errorf("%w: %d keys in one mget (at most %d)", ErrTooLarge, len(keys), wire.MaxMGetKeys)
	}
	r, err := c.Do(ctx, &wire.Header{Op: task.OpMGet}, wire.AppendKeys(nil, keys))
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
		wg.Go(func() { results[i].item, results[i].err = c.Get(ctx, k) })
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

func (c *Client) write(ctx context.Context, op task.Op, key string, value []byte, version uint64, opts []WriteOption) (uint64, error) {
	h := &wire.Header{Op: op, Key: []byte(key), Ver: version}
	for _, o := range opts {
		o(h)
	}
	r, err := c.Do(ctx, h, value)
	c.wrote(key)
	return r.Header.Ver, err
}

// wrote tells the near cache about a write of key by this client (whatever its outcome).
func (c *Client) wrote(key string) {
	if c.near != nil {
		c.near.written(key)
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
	_, err := c.Do(ctx, &wire.Header{Op: task.OpDelete, Key: []byte(key)}, nil)
	c.wrote(key)
	return err
}

// Incr adds delta (which may be negative) to the decimal counter at key and returns the new
// value. ErrNotFound if the key does not exist, ErrNotCounter if its value is not an integer.
func (c *Client) Incr(ctx context.Context, key string, delta int64) (int64, error) {
	r, err := c.Do(ctx, &wire.Header{Op: task.OpIncr, Key: []byte(key), Delta: delta}, nil)
	c.wrote(key)
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
	_, err := c.Do(ctx, &wire.Header{Op: task.OpTouch, Key: []byte(key), TTL: ttl.Milliseconds()}, nil)
	return err
}

// Stats returns the server's counters (gets, hits, misses, store loads and writes, items, bytes...).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	r, err := c.Do(ctx, &wire.Header{Op: task.OpStats}, nil)
	if err != nil {
		return nil, err
	}
	stats := map[string]int64{}
	if err := json.Unmarshal(r.Value, &stats); err != nil {
		return nil, fmt.Errorf("%w: stats: %w", ErrInternal, err)
	}
	return stats, nil
}

func isNotFound(err error) bool {
	se, ok := err.(*ServerError)
	return ok && se.Code == task.CodeNotFound
}
