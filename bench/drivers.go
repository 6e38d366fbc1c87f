package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/client/etcdnodes"
)

// Conn is what one worker uses to talk to the server.
type Conn interface {
	Get(ctx context.Context, key string) (hit bool, err error)
	Set(ctx context.Context, key string, value []byte) error
	MGet(ctx context.Context, keys []string) error
	Incr(ctx context.Context, key string) error
	// CAS reads key and writes value back only if it did not change meanwhile. conflict reports
	// a lost race (not an error).
	CAS(ctx context.Context, key string, value []byte) (conflict bool, err error)
}

// Driver opens connections to one kind of server.
type Driver interface {
	// Conn returns the connection worker w uses.
	Conn(w int) Conn
	Close() error
}

// Servers lists the drivers by name. pipecache-cluster is several pipecached nodes through the
// SDK's Cluster: its address is the nodes' etcd store URL (etcd://host:2379/prefix: the member
// set) or a comma-separated list of nodes.
var Servers = []string{"pipecache", "pipecache-cluster", "redis", "memcached"}

// Open connects to a server of the given kind with the given number of sessions
// (connections). For Redis and memcached, workers share a pool of that many connections (their
// clients send one command per connection at a time); pipecache multiplexes a worker's requests
// on its session. nearCache > 0 gives every pipecache session a near cache of that many keys
// (the others have none: it is an error to ask).
func Open(kind, addr string, sessions int, token string, nearCache int) (Driver, error) {
	if nearCache > 0 && !strings.HasPrefix(kind, "pipecache") {
		return nil, fmt.Errorf("a near cache is pipecache's SDK's, not %s's", kind)
	}
	switch kind {
	case "pipecache":
		d := &pipecacheDriver{}
		for range sessions {
			opts := []client.Option{client.WithToken(token), client.WithName("pipecache-bench"),
				client.WithHeartbeat(time.Second, 30*time.Second)}
			if nearCache > 0 {
				opts = append(opts, client.WithNearCache(nearCache, 0))
			}
			c, err := client.Dial(addr, opts...)
			if err != nil {
				d.Close()
				return nil, err
			}
			d.clients = append(d.clients, c)
		}
		return d, nil
	case "pipecache-cluster":
		nodes := client.StaticNodes(strings.Split(addr, ",")...)
		if strings.HasPrefix(addr, "etcd://") {
			nodes = etcdnodes.New(addr)
		}
		d := &clusterDriver{}
		for range sessions {
			opts := []client.Option{client.WithToken(token), client.WithName("pipecache-bench"),
				client.WithHeartbeat(time.Second, 30*time.Second), client.WithAttemptTimeout(5 * time.Second),
				client.WithLogger(warnings)}
			if nearCache > 0 {
				opts = append(opts, client.WithNearCache(nearCache, 0))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cl, err := client.DialCluster(ctx, nodes, opts...)
			cancel()
			if err != nil {
				d.Close()
				return nil, err
			}
			d.clusters = append(d.clusters, cl)
		}
		return d, nil
	case "redis":
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: sessions, MinIdleConns: sessions,
			Protocol: 2, DisableIdentity: true})
		if err := c.Ping(context.Background()).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis %s: %w", addr, err)
		}
		return &redisDriver{redisConn{c}}, nil
	case "memcached":
		c := memcache.New(addr)
		c.MaxIdleConns = sessions
		c.Timeout = 5 * time.Second
		if err := c.Ping(); err != nil {
			return nil, fmt.Errorf("memcached %s: %w", addr, err)
		}
		return &memcachedDriver{memcachedConn{c}}, nil
	}
	return nil, fmt.Errorf("unknown server %q (one of %v)", kind, Servers)
}

// warnings logs the SDK's warnings (a node failing, subscriptions moving) to stderr.
var warnings = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

type pipecacheDriver struct{ clients []*client.Client }

// NearHits returns the near-cache hits of all sessions so far.
func (d *pipecacheDriver) NearHits() uint64 {
	var n uint64
	for _, c := range d.clients {
		n += c.NearCacheStats().Hits
	}
	return n
}

func (d *pipecacheDriver) Conn(w int) Conn { return pipecacheConn{d.clients[w%len(d.clients)]} }
func (d *pipecacheDriver) Close() error {
	for _, c := range d.clients {
		c.Close()
	}
	return nil
}

// clusterDriver: each session is a Cluster (one SDK client per node).
type clusterDriver struct{ clusters []*client.Cluster }

func (d *clusterDriver) Conn(w int) Conn { return pipecacheConn{d.clusters[w%len(d.clusters)]} }
func (d *clusterDriver) Close() error {
	for _, c := range d.clusters {
		c.Close()
	}
	return nil
}

// pipecacheKV is what a Client and a Cluster both offer.
type pipecacheKV interface {
	Get(ctx context.Context, key string) (client.Item, error)
	Set(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	MGet(ctx context.Context, keys ...string) (map[string]client.Item, error)
	Incr(ctx context.Context, key string, delta int64) (int64, error)
	CAS(ctx context.Context, key string, value []byte, version uint64, opts ...client.WriteOption) (uint64, error)
}

type pipecacheConn struct{ c pipecacheKV }

func (p pipecacheConn) Get(ctx context.Context, key string) (bool, error) {
	_, err := p.c.Get(ctx, key)
	if errors.Is(err, client.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (p pipecacheConn) Set(ctx context.Context, key string, value []byte) error {
	_, err := p.c.Set(ctx, key, value)
	return err
}

func (p pipecacheConn) MGet(ctx context.Context, keys []string) error {
	_, err := p.c.MGet(ctx, keys...)
	return err
}

func (p pipecacheConn) Incr(ctx context.Context, key string) error {
	_, err := p.c.Incr(ctx, key, 1)
	return err
}

func (p pipecacheConn) CAS(ctx context.Context, key string, value []byte) (bool, error) {
	it, err := p.c.Get(ctx, key)
	if err != nil {
		return false, err
	}
	_, err = p.c.CAS(ctx, key, value, it.Version)
	if errors.Is(err, client.ErrVersionMismatch) {
		return true, nil
	}
	return false, err
}

type redisDriver struct{ c redisConn }

func (d *redisDriver) Conn(int) Conn { return d.c }
func (d *redisDriver) Close() error  { return d.c.c.Close() }

type redisConn struct{ c *redis.Client }

func (r redisConn) Get(ctx context.Context, key string) (bool, error) {
	err := r.c.Get(ctx, key).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func (r redisConn) Set(ctx context.Context, key string, value []byte) error {
	return r.c.Set(ctx, key, value, 0).Err()
}

func (r redisConn) MGet(ctx context.Context, keys []string) error {
	return r.c.MGet(ctx, keys...).Err()
}

func (r redisConn) Incr(ctx context.Context, key string) error { return r.c.Incr(ctx, key).Err() }

func (r redisConn) CAS(ctx context.Context, key string, value []byte) (bool, error) {
	err := r.c.Watch(ctx, func(tx *redis.Tx) error {
		if err := tx.Get(ctx, key).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, value, 0)
			return nil
		})
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return true, nil
	}
	return false, err
}

type memcachedDriver struct{ c memcachedConn }

func (d *memcachedDriver) Conn(int) Conn { return d.c }
func (d *memcachedDriver) Close() error  { return d.c.c.Close() }

type memcachedConn struct{ c *memcache.Client }

func (m memcachedConn) Get(_ context.Context, key string) (bool, error) {
	_, err := m.c.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return false, nil
	}
	return err == nil, err
}

func (m memcachedConn) Set(_ context.Context, key string, value []byte) error {
	return m.c.Set(&memcache.Item{Key: key, Value: value})
}

func (m memcachedConn) MGet(_ context.Context, keys []string) error {
	_, err := m.c.GetMulti(keys)
	return err
}

func (m memcachedConn) Incr(_ context.Context, key string) error {
	_, err := m.c.Increment(key, 1)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return m.c.Set(&memcache.Item{Key: key, Value: []byte(strconv.Itoa(1))})
	}
	return err
}

func (m memcachedConn) CAS(_ context.Context, key string, value []byte) (bool, error) {
	it, err := m.c.Get(key)
	if err != nil {
		return false, err
	}
	it.Value = value
	err = m.c.CompareAndSwap(it)
	if errors.Is(err, memcache.ErrCASConflict) {
		return true, nil
	}
	return false, err
}
