package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// ZIncr adds delta to member's score on the board key (zincr.go): by exec, or with cas by
	// get and CAS retried (pipecache only), or ZINCRBY (Redis). conflicts counts the lost CAS.
	ZIncr(ctx context.Context, key, member string, delta float64, cas bool) (conflicts int64, err error)
}

// sessionAwaiter is implemented by the Conns whose client library redials a lost session on its
// own (pipecache's SDK): after a request fails, the worker waits for the session to be back
// instead of spinning through instant failures.
type sessionAwaiter interface {
	awaitSession(ctx context.Context, err error)
}

// Driver opens connections to one kind of server.
type Driver interface {
	// Conn returns the connection worker w uses, or nil if worker w's session never connected
	// (the worker then does not run).
	Conn(w int) Conn
	// Stats counts the dials and the sessions lost so far.
	Stats() ConnStats
	Close() error
}

// Servers lists the drivers by name. pipecache-cluster is several pipecached nodes through the
// SDK's Cluster: its address is the nodes' etcd store URL (etcd://host:2379/prefix: the member
// set) or a comma-separated list of nodes.
var Servers = []string{"pipecache", "pipecache-cluster", "redis", "memcached"}

// Options say how Open connects.
type Options struct {
	// Sessions is the number of connections. For Redis and memcached it is the pool size of one
	// client, whose workers share its connections (those clients send one command per
	// connection at a time); for pipecache it is the number of SDK clients (sessions), worker w
	// using session w mod Sessions and multiplexing its requests on it.
	Sessions int
	// Shared gives every worker the same client object: one pipecache Client (one session, so
	// Sessions is ignored) or one Cluster. go-redis and gomemcache clients are shared objects with
	// a pool of Sessions connections in both modes, so Shared changes nothing for them.
	Shared    bool
	Token     string     // pipecache auth token
	NearCache int        // > 0: every pipecache session has a near cache of that many keys
	Dial      DialPolicy // how failed dials are retried
}

// Open connects to a server of the given kind, retrying failed dials as o.Dial says. A
// pipecache session that still fails is left out (its workers do not run; Stats counts it);
// Open fails only if none connected. It is an error to ask Redis or memcached for a near cache.
func Open(kind, addr string, o Options) (Driver, error) {
	if o.NearCache > 0 && !strings.HasPrefix(kind, "pipecache") {
		return nil, fmt.Errorf("a near cache is pipecache's SDK's, not %s's", kind)
	}
	if o.Sessions <= 0 {
		return nil, errors.New("bench: sessions must be positive")
	}
	n := o.Sessions
	if o.Shared {
		n = 1
	}
	switch kind {
	case "pipecache":
		return openPipecache(addr, n, o)
	case "pipecache-cluster":
		return openCluster(addr, n, o)
	case "redis":
		return openRedis(addr, o)
	case "memcached":
		return openMemcached(addr, o)
	}
	return nil, fmt.Errorf("unknown server %q (one of %v)", kind, Servers)
}

// sdkOptions are the options of every pipecache session the load generator opens.
func sdkOptions(o Options) []client.Option {
	opts := []client.Option{client.WithToken(o.Token), client.WithName("pipecache-bench"),
		client.WithHeartbeat(time.Second, 30*time.Second)}
	if o.NearCache > 0 {
		opts = append(opts, client.WithNearCache(o.NearCache, 0))
	}
	return opts
}

func openPipecache(addr string, n int, o Options) (Driver, error) {
	opts := sdkOptions(o)
	clients, st, err := dialAll(o.Dial, n, func(ctx context.Context, _ int) (*client.Client, error) {
		return client.DialContext(ctx, addr, opts...)
	})
	d := &pipecacheDriver{clients: clients, dial: st, quit: make(chan struct{})}
	if err != nil {
		d.Close()
		return nil, err
	}
	d.wg.Go(d.watch)
	return d, nil
}

func openCluster(addr string, n int, o Options) (Driver, error) {
	nodes := client.StaticNodes(strings.Split(addr, ",")...)
	if strings.HasPrefix(addr, "etcd://") {
		nodes = etcdnodes.New(addr)
	}
	opts := append(sdkOptions(o), client.WithAttemptTimeout(5*time.Second), client.WithLogger(warnings))
	clusters, st, err := dialAll(o.Dial, n, func(ctx context.Context, _ int) (*client.Cluster, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return client.DialCluster(ctx, nodes, opts...)
	})
	d := &clusterDriver{clusters: clusters, dial: st}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func openRedis(addr string, o Options) (Driver, error) {
	// ContextTimeoutEnabled: a request still waiting when the run's context ends gives up then
	// (without it go-redis waits for its own read timeout, and retries, under packet loss).
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: o.Sessions, MinIdleConns: o.Sessions,
		Protocol: 2, DisableIdentity: true, ContextTimeoutEnabled: true})
	ping := func(ctx context.Context) (bool, error) { return true, c.Ping(ctx).Err() }
	_, st, err := dialAll(o.Dial, 1, func(ctx context.Context, _ int) (bool, error) { return ping(ctx) })
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return &redisDriver{c: redisConn{c}, dial: pooled(st, o.Sessions)}, nil
}

func openMemcached(addr string, o Options) (Driver, error) {
	c := memcache.New(addr)
	c.MaxIdleConns = o.Sessions
	c.Timeout = 5 * time.Second
	_, st, err := dialAll(o.Dial, 1, func(context.Context, int) (bool, error) { return true, c.Ping() })
	if err != nil {
		return nil, fmt.Errorf("memcached %s: %w", addr, err)
	}
	return &memcachedDriver{c: memcachedConn{c}, dial: pooled(st, o.Sessions)}, nil
}

// pooled turns the stats of the one checked dial of a pooled client into its pool's: the pool
// opens its connections itself.
func pooled(st ConnStats, sessions int) ConnStats {
	st.Sessions, st.Connected = sessions, sessions
	return st
}

// warnings logs the SDK's warnings (a node failing, subscriptions moving) to stderr.
var warnings = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// pipecacheDriver: each session is a Client; clients[i] is nil if session i never connected.
type pipecacheDriver struct {
	clients []*client.Client
	dial    ConnStats    // set by Open
	lost    atomic.Int64 // sessions lost, counted by watch
	quit    chan struct{}
	wg      sync.WaitGroup
}

// watchEvery is how often the driver looks at its sessions. The SDK waits at least 25 ms before
// it redials a lost session, so every loss is seen.
const watchEvery = 5 * time.Millisecond

// watch counts the sessions lost: a client that was connected and is not (its SDK is
// redialling). One goroutine for all sessions, looking every watchEvery.
func (d *pipecacheDriver) watch() {
	up := make([]bool, len(d.clients))
	for i, c := range d.clients {
		up[i] = c != nil
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-t.C:
		}
		for i, c := range d.clients {
			if c == nil {
				continue
			}
			now := c.Connected()
			if up[i] && !now {
				d.lost.Add(1)
			}
			up[i] = now
		}
	}
}

// NearHits returns the near-cache hits of all sessions so far.
func (d *pipecacheDriver) NearHits() uint64 {
	var n uint64
	for _, c := range d.clients {
		if c != nil {
			n += c.NearCacheStats().Hits
		}
	}
	return n
}

func (d *pipecacheDriver) Conn(w int) Conn {
	c := d.clients[w%len(d.clients)]
	if c == nil {
		return nil
	}
	return pipecacheConn{c}
}

func (d *pipecacheDriver) Stats() ConnStats {
	st := d.dial
	st.Lost = d.lost.Load()
	return st
}

// Close closes every session at once: each says goodbye and waits up to 200 ms for the reply,
// which under packet loss would add up to seconds one after the other.
func (d *pipecacheDriver) Close() error {
	close(d.quit)
	d.wg.Wait()
	closeAll(d.clients)
	return nil
}

// closeAll closes every non-nil closer in parallel.
func closeAll[T interface {
	comparable
	Close() error
}](cs []T) {
	var zero T
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != zero {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// clusterDriver: each session is a Cluster (one SDK client per node); nil if it never connected.
type clusterDriver struct {
	clusters []*client.Cluster
	dial     ConnStats
}

func (d *clusterDriver) Conn(w int) Conn {
	c := d.clusters[w%len(d.clusters)]
	if c == nil {
		return nil
	}
	return pipecacheConn{c}
}

func (d *clusterDriver) Stats() ConnStats { return d.dial }
func (d *clusterDriver) Close() error {
	closeAll(d.clusters)
	return nil
}

// pipecacheKV is what a Client and a Cluster both offer.
type pipecacheKV interface {
	Get(ctx context.Context, key string) (client.Item, error)
	Set(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	MGet(ctx context.Context, keys ...string) (map[string]client.Item, error)
	Incr(ctx context.Context, key string, delta int64, opts ...client.IncrOption) (int64, error)
	CAS(ctx context.Context, key string, value []byte, version uint64, opts ...client.WriteOption) (uint64, error)
	Add(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	Exec(ctx context.Context, key, proc string, args []byte) ([]byte, uint64, error)
}

type pipecacheConn struct{ c pipecacheKV }

// awaitSession waits, after a request failed as unavailable, until the session is back (the SDK
// redials it on its own) or ctx ends, checking every watchEvery. A Cluster fails over by itself.
func (p pipecacheConn) awaitSession(ctx context.Context, err error) {
	c, ok := p.c.(*client.Client)
	if !ok || !errors.Is(err, client.ErrUnavailable) || c.Connected() {
		return
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for !c.Connected() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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

type redisDriver struct {
	c    redisConn
	dial ConnStats
}

func (d *redisDriver) Conn(int) Conn    { return d.c }
func (d *redisDriver) Stats() ConnStats { return d.dial }
func (d *redisDriver) Close() error     { return d.c.c.Close() }

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

type memcachedDriver struct {
	c    memcachedConn
	dial ConnStats
}

func (d *memcachedDriver) Conn(int) Conn    { return d.c }
func (d *memcachedDriver) Stats() ConnStats { return d.dial }
func (d *memcachedDriver) Close() error     { return d.c.c.Close() }

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
