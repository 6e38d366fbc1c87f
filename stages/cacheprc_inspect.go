package stages

import (
	"errors"

	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// Key inspection (PROTOCOL.md, "Finding and inspecting keys"): ttl and type are reads of one
// key, served as a get is (a cold key is loaded once, a read sees the durable value); exists
// is an mget that counts; a scan step is the store's work, done by an Outgoing worker, so that
// CachePrc only passes it on and answers it.

// isRead reports whether op reads one key's durable value (and waits only for a load).
func isRead(op task.Op) bool { return op == task.OpGet || op == task.OpTTL || op == task.OpType }

// TTL replies (Task.Delta): the remaining time in milliseconds, or one of these.
const (
	TTLNone    = -1 // the key exists and does not expire
	TTLMissing = -2 // no such key
)

// inspect answers ttl and type from slot i's durable value. A missing key is no error: ttl
// says TTLMissing, type "none".
func (c *CachePrc) inspect(i uint32, t *task.Task, now int64) {
	s, present, ok := c.durable(i, t, now)
	if !ok {
		return
	}
	t.Value, t.Delta, t.Version = t.Value[:0], 0, 0
	switch {
	case t.Op == task.OpType && !present:
		t.Value = append(t.Value, "none"...)
	case t.Op == task.OpType:
		t.Value = append(t.Value, KindOf(c.tab.value(s))...)
		t.Version = s.version
	case !present:
		t.Delta = TTLMissing
	case s.expireAt == 0:
		t.Delta, t.Version = TTLNone, s.version
	default:
		t.Delta, t.Version = s.expireAt-now, s.version
	}
	c.reply(t)
}

// KindOf names what a value holds, for the type op: "hash", "list" or "zset" if that built-in
// processor accepts it (its format byte and every check of its decoding: processor.EncodingOf,
// O(entries), no allocation), else "string".
func KindOf(value []byte) string {
	if name := processor.EncodingOf(value); name != "" {
		return name
	}
	return "string"
}

// replyExists answers an exists: how many of its keys are present (a key named twice counts
// twice, as in Redis).
func (c *CachePrc) replyExists(t *task.Task, st *mgetState) {
	n := 0
	for _, r := range st.results {
		if r.found {
			n++
		}
	}
	t.Delta = int64(n)
	c.reply(t)
}

// scan passes a scan step to Outgoing's workers, which read the store; the reply comes back
// as a completion (scanDone). The arguments are checked there (wire.ParseScan), not here.
func (c *CachePrc) scan(t *task.Task) {
	if c.executing == t {
		c.executing = nil // answered on its completion
	}
	if err := c.toStore.Push(t); err != nil {
		c.fail(t, task.CodeBusy, errors.New("store queue full"))
		return
	}
	c.inflight++
}

// scanDone answers a scan step Outgoing has done.
func (c *CachePrc) scanDone(t *task.Task) {
	c.inflight--
	defer c.closeStoreIfDone()
	c.reply(t)
}
