package client

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// The near cache: an opt-in, bounded LRU of values in the client, kept correct by pushes.
//
// The first Get of a key subscribes to it (with values) and then reads it from the server; the
// entry is then served locally until a push for the key arrives (a set refreshes it with the
// new value, a delete or expiry drops it), a resync arrives (every entry is dropped), the
// session is lost (every entry and subscription is dropped), or it is evicted (its
// subscription ends).
//
// Staleness bound. Entries are served only while the push stream is known complete recently:
// a heartbeat's reply carries the server's last push sequence number and whether changes are
// held back; when dispatch reaches that reply having processed every push up to it, every
// change acknowledged to any client before the heartbeat was sent has been applied here
// (CachePrc hands a change to SessionMgr before acknowledging it, and SessionMgr answers the
// heartbeat after pushing everything it had). So a near-cache hit at time R returns a value at
// least as new as every write acknowledged before R - MaxStale. Past that, Get goes to the
// server (and a session that stays silent is redialled as usual).

// WithNearCache enables the near cache, holding up to entries keys, served while the push
// stream was confirmed complete within maxStale (0: 3 heartbeat intervals; the client then
// sends heartbeats at least every maxStale/3).
func WithNearCache(entries int, maxStale time.Duration) Option {
	return func(o *options) { o.nearSize, o.nearMaxStale = entries, maxStale }
}

// NearCacheStats counts the near cache's work.
type NearCacheStats struct {
	Hits, Misses  uint64 // gets answered locally, and gets that went to the server
	Stale         uint64 // of the misses: the entry was there but the stream not confirmed recently
	Refreshed     uint64 // entries updated in place by a pushed value
	Invalidated   uint64 // entries dropped by a push (delete, expiry, set without value)
	Evicted       uint64 // entries dropped for room
	Entries       int
	Subscriptions int  // keys the near cache subscribes to
	Synced        bool // the push stream was confirmed complete within MaxStale: entries are served
}

type nearEntry struct {
	value   []byte
	version uint64
	valid   bool   // value is the key's newest version as of the last event
	epoch   uint64 // the cache's epoch when value was stored: a resync moves the epoch on
	gen     uint64 // moves on with every event for the key: a fill started before one is stale
	subbed  bool   // the server confirmed the subscription
	// fillOnly: this client wrote the key and the version its write made is unknown (a delete,
	// a failed write): no push may make the entry valid again, only a read from the server.
	fillOnly bool
}

type nearCache struct {
	c        *Client
	maxStale time.Duration
	syncedAt atomic.Int64 // unix nanos: the send time of the newest heartbeat that proved the stream complete

	mu        sync.Mutex // guards everything below
	lru       *simplelru.LRU[string, *nearEntry]
	epoch     uint64
	unsubbing map[string]bool // evicted keys whose unsubscribe is not written yet: not cached meanwhile
	resetting bool            // evictions during reset need no unsubscribe

	unsub  chan string // evicted keys to unsubscribe, written by writer
	writer kicker      // runs writeUnsubscribes

	hits, misses, stale, refreshed, invalidated, evicted atomic.Uint64
}

func newNearCache(c *Client, size int, maxStale time.Duration) *nearCache {
	if maxStale <= 0 {
		maxStale = 3 * c.opts.heartbeat
	}
	n := &nearCache{c: c, maxStale: maxStale, unsubbing: map[string]bool{}, unsub: make(chan string, 4096)}
	n.writer.fn = n.writeUnsubscribes
	n.lru, _ = simplelru.NewLRU(size, n.onEvict)
	return n
}

// onEvict runs under mu when the LRU drops an entry.
func (n *nearCache) onEvict(key string, e *nearEntry) {
	if n.resetting || !e.subbed {
		return
	}
	n.evicted.Add(1)
	n.unsubbing[key] = true
	select {
	case n.unsub <- key:
		n.writer.kick()
	default:
		// The writer is far behind: keep the key marked (never cached again until its
		// unsubscribe is written) and queue it from a goroutine.
		go func() {
			select {
			case n.unsub <- key:
				n.writer.kick()
			case <-n.c.done:
			}
		}()
	}
}

// writeUnsubscribes writes the unsubscribes of evicted keys, in order, without waiting for
// replies, until none is queued. It runs in n.writer's goroutine, one at a time. Once one is
// written, a new subscribe of the same key follows it on the same ordered stream.
func (n *nearCache) writeUnsubscribes() {
	for {
		var key string
		select {
		case <-n.c.done:
			return
		case key = <-n.unsub:
		default:
			return
		}
		s := n.c.current()
		if s != nil && !n.c.userSubscribed(key) {
			h := &wire.Header{Op: task.OpUnsubscribe, Key: []byte(key)}
			n.c.writeFrame(context.Background(), s, h, nil) // reply has id 0: ignored
		}
		n.mu.Lock()
		delete(n.unsubbing, key)
		n.mu.Unlock()
	}
}

// holds reports whether the near cache subscribes to key. Safe on a nil cache.
func (n *nearCache) holds(key string) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.lru.Peek(key)
	return ok && e.subbed
}

// synced records that the push stream was complete as of sentAt.
func (n *nearCache) synced(sentAt int64) {
	for {
		old := n.syncedAt.Load()
		if sentAt <= old || n.syncedAt.CompareAndSwap(old, sentAt) {
			return
		}
	}
}

func (n *nearCache) fresh() bool {
	return time.Since(time.Unix(0, n.syncedAt.Load())) < n.maxStale
}

// apply handles a push, in dispatch (never blocking), in stream order.
func (n *nearCache) apply(kind EventKind, key string, version uint64, value []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if kind == EventResync {
		n.epoch++ // every entry stale at once; subscriptions stay
		return
	}
	e, ok := n.lru.Peek(key)
	if !ok {
		return
	}
	e.gen++
	if kind == EventSet && value != nil && version >= e.version && !e.fillOnly {
		e.value, e.version, e.valid, e.epoch = append(e.value[:0:0], value...), version, true, n.epoch
		n.refreshed.Add(1)
		return
	}
	e.valid = false
	n.invalidated.Add(1)
}

// reset forgets every entry: the session (and with it the subscriptions) was lost.
func (n *nearCache) reset() {
	n.mu.Lock()
	n.resetting = true
	n.lru.Purge()
	n.resetting = false
	n.epoch++
	n.mu.Unlock()
}

// written is told of this client's own writes once they are answered, so that it reads its
// writes even before their push arrives. version is the one the write made (0: unknown).
//
// Pushes may arrive after the write's reply, older ones too: CachePrc hands a change to
// SessionMgr before it acknowledges the write, but SessionMgr's loop pushes it when it gets to
// it, while the reply goes from CachePrc to Incoming directly. So a push of another client's
// earlier write can come after this write's reply; applied, it would show this client a value
// older than its own write. The entry keeps the write's version as a floor (apply refreshes
// only at or above it), or, with the version unknown, waits for a read from the server.
func (n *nearCache) written(key string, version uint64) {
	n.mu.Lock()
	if e, ok := n.lru.Peek(key); ok {
		e.gen++
		e.valid = false
		e.version = max(e.version, version)
		e.fillOnly = e.fillOnly || version == 0
	}
	n.mu.Unlock()
}

// get serves key from the near cache (local) or, on a miss, from the server, filling the cache.
func (n *nearCache) get(ctx context.Context, key string) (it Item, local bool, err error) {
	n.mu.Lock()
	e, ok := n.lru.Get(key)
	if ok && e.valid && e.epoch == n.epoch {
		if n.fresh() {
			v := append([]byte(nil), e.value...)
			ver := e.version
			n.mu.Unlock()
			n.hits.Add(1)
			return Item{Key: key, Value: v, Version: ver}, true, nil
		}
		n.stale.Add(1)
	}
	n.misses.Add(1)
	if n.unsubbing[key] {
		n.mu.Unlock()
		it, err = n.c.getRemote(ctx, key) // its unsubscribe is on the way: do not cache it now
		return it, false, err
	}
	if !ok {
		e = &nearEntry{}
		n.lru.Add(key, e)
	}
	subbed, gen, epoch := e.subbed, e.gen, n.epoch
	n.mu.Unlock()

	if !subbed {
		h := &wire.Header{Op: task.OpSubscribe, Key: []byte(key), Flags: task.FlagWithValue}
		if _, err := n.c.roundTrip(ctx, h, nil); err != nil {
			n.mu.Lock()
			if cur, ok := n.lru.Peek(key); ok && cur == e && !e.subbed {
				n.lru.Remove(key)
			}
			n.mu.Unlock()
			it, err = n.c.getRemote(ctx, key)
			return it, false, err
		}
		n.mu.Lock()
		if cur, ok := n.lru.Peek(key); ok && cur == e && n.epoch == epoch {
			e.subbed = true
			gen = e.gen
		}
		n.mu.Unlock()
	}
	it, err = n.c.getRemote(ctx, key)
	if err != nil {
		return it, false, err
	}
	n.mu.Lock()
	// Store only if nothing happened to the key meanwhile: no event, no resync, no reset.
	if cur, ok := n.lru.Peek(key); ok && cur == e && e.subbed && e.gen == gen && n.epoch == epoch {
		e.value, e.version, e.valid, e.epoch = append(e.value[:0:0], it.Value...), it.Version, true, epoch
		e.fillOnly = false // read after every write of this client that had been answered
	}
	n.mu.Unlock()
	return it, false, nil
}

func (n *nearCache) stats() NearCacheStats {
	n.mu.Lock()
	entries, subs := n.lru.Len(), 0
	for _, e := range n.lru.Values() {
		if e.subbed {
			subs++
		}
	}
	n.mu.Unlock()
	return NearCacheStats{Hits: n.hits.Load(), Misses: n.misses.Load(), Stale: n.stale.Load(),
		Refreshed: n.refreshed.Load(), Invalidated: n.invalidated.Load(), Evicted: n.evicted.Load(),
		Entries: entries, Subscriptions: subs, Synced: n.fresh()}
}

// NearCacheStats returns the near cache's counters (zero without WithNearCache).
func (c *Client) NearCacheStats() NearCacheStats {
	if c.near == nil {
		return NearCacheStats{}
	}
	return c.near.stats()
}
