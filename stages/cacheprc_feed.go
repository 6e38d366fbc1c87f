package stages

import (
	"github.com/pipecache/pipecache/task"
)

// The store's change feed (a shared store: etcd). Every change made by anyone, this node
// included, comes back as an OpChanged task from Outgoing, in revision order. A change this node
// already knows (its own write: the cached version is not older) is ignored; any other updates
// the cached entry, if the key is cached here, and is pushed to this node's subscribers either
// way, so a write through another node or by any etcd client reaches them.

// changed applies one change from the feed.
func (c *CachePrc) changed(t *task.Task) {
	if t.Op == task.OpFeedState {
		c.feedDown = t.Code != task.CodeOK
		c.stats.unreachable.Store(0)
		if c.feedDown {
			c.stats.unreachable.Store(1)
		}
		return
	}
	if t.Op == task.OpFeedResync {
		c.dropAll()
		c.emit(nil, 0, task.PushResync, nil)
		return
	}
	kind := task.PushSet
	if t.Delete {
		kind = task.PushDelete
	}
	i := c.tab.lookup(t.Key)
	if i == 0 {
		c.emit(t.Key, t.Version, kind, t.Value) // not cached here: only the subscribers care
		return
	}
	s := c.tab.slot(i)
	if s.version >= t.Version {
		return // this node's own write (or older news)
	}
	if fl := c.flights[i]; fl != nil && (fl.load != nil || len(fl.ops) > 0) {
		// A load or a change of ours is in flight on the key: whichever is newer wins when it
		// completes (see foreignAfter).
		if t.Version > fl.foreign {
			fl.foreign, fl.foreignDelete = t.Version, kind == task.PushDelete
		}
		return
	}
	c.stats.foreign.Add(1)
	if kind == task.PushDelete {
		c.setAbsent(i, c.nowMs())
		c.tab.setDeleted(i, t.Version)
		c.emit(t.Key, t.Version, kind, nil)
		return
	}
	c.dropLive(i)
	c.setValue(i, t.Value, t.Version, t.ExpireAt)
	c.emit(t.Key, t.Version, kind, t.Value)
	c.evict()
}

// foreignAfter handles a change by another writer that the feed reported while a load or a
// change of ours was in flight and that turned out newer than its result (the key has nothing
// pending any more): the entry is dropped (the
// next read loads the newest), and subscribers are told, without a value.
func (c *CachePrc) foreignAfter(i uint32, fl *inflight) {
	version, del := fl.foreign, fl.foreignDelete
	fl.foreign, fl.foreignDelete = 0, false
	c.stats.foreign.Add(1)
	kind := task.PushSet
	if del {
		kind = task.PushDelete
	}
	c.emit(c.tab.key(c.tab.slot(i)), version, kind, nil)
	if len(fl.waiters) == 0 {
		c.settle(i)
		if c.flights[i] == nil {
			c.removeSlot(i)
			return
		}
	}
	// Requests are waiting: they run, in order, against a fresh load rather than the stale entry.
	c.dropLive(i)
	c.tab.unload(i)
	c.loadFor(i)
}

// dropAll forgets every entry with nothing in flight (the feed lost track of changes).
func (c *CachePrc) dropAll() {
	n := 0
	c.tab.each(func(i uint32) {
		if c.flights[i] == nil {
			c.removeSlot(i)
			n++
		}
	})
	c.log.Warn("change feed lost track: dropped the cache", "entries", n)
}
