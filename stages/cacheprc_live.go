package stages

import (
	"errors"

	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// Live values (processor.Type: the built-ins hash, list and zset). The first exec of such a
// processor on a key decodes the key's value once, checking all of it; the decoded value stays
// in execState.live, and every later call changes it in place (processor.CallLive: a zset incr
// is O(log n)). It is encoded once per store commit that carries a change of it (flush), and
// the encoding becomes the durable value that reads return. The memory budget counts it.
//
// A key's live value is always its head: the value its pending requests left, or, with none
// pending, its durable value. Whatever changes the head otherwise (a set, an incr, another
// processor's write, a failed commit, an expiry, a load, a change from the store's feed) drops
// it; the next call decodes again. A failed commit needs no undo: the durable encoding is
// still in the table.

// liveEntry is a key's live value and the Type that decoded it.
type liveEntry struct {
	typ processor.Type
	v   processor.Value
	mem int // what it held when last counted
}

// runLive runs t's processor, of Type typ, on slot i's live value, whose head is v.
func (c *CachePrc) runLive(i uint32, t *task.Task, v view, typ processor.Type) {
	lv, err := c.liveOf(i, typ, v)
	if err != nil {
		c.execFailed(i, t, err)
		return
	}
	in := processor.Input{Key: c.tab.keyOf(i), Exists: v.present, Args: t.Value, Now: c.loop.Clock().Time()}
	out := &c.exec.out
	st, err := processor.CallLive(lv, in, c.exec.limits, out)
	c.observeExec(st)
	if err != nil {
		if pe := (*processor.PanicError)(nil); errors.As(err, &pe) {
			c.livePanicked(i) // the value may be half changed
		}
		c.execFailed(i, t, err)
		return
	}
	c.countLive(i)
	t.Value = append(t.Value[:0], out.Result...) // the arguments are read: the result replaces them
	switch out.Action {
	case processor.Set:
		expireAt := int64(0) // a key a processor creates has no TTL; one it changes keeps its own
		if v.present {
			expireAt = v.expireAt
		}
		c.applyChange(i, t, newHead{live: true, expireAt: expireAt})
	case processor.Delete:
		c.applyChange(i, t, newHead{del: true})
	default:
		if !v.present {
			c.dropLive(i) // the key does not exist: nothing to keep
		}
		t.Version = 0
		if v.present {
			t.Version = v.version
		}
		c.respond(i, t)
	}
}

// liveOf returns slot i's live value of Type typ, decoding the head (v) if it has none.
func (c *CachePrc) liveOf(i uint32, typ processor.Type, v view) (processor.Value, error) {
	e, ok := c.exec.live[i]
	if ok && e.typ == typ && v.present {
		return e.v, nil
	}
	var lv processor.Value
	if !v.present {
		lv = typ.Empty()
	} else {
		var err error
		if lv, err = typ.Decode(c.headValue(i)); err != nil {
			return nil, err
		}
	}
	c.dropLive(i)
	c.exec.live[i] = liveEntry{typ: typ, v: lv}
	c.countLive(i)
	return lv, nil
}

// countLive brings the memory count of slot i's live value up to date.
func (c *CachePrc) countLive(i uint32) {
	e, ok := c.exec.live[i]
	if !ok {
		return
	}
	mem := e.v.Mem()
	c.exec.liveMem += int64(mem - e.mem)
	e.mem = mem
	c.exec.live[i] = e
	c.account()
}

// dropLive forgets slot i's live value, if it has one.
func (c *CachePrc) dropLive(i uint32) {
	e, ok := c.exec.live[i]
	if !ok {
		return
	}
	delete(c.exec.live, i)
	c.exec.liveMem -= int64(e.mem)
	c.account()
}

// liveValue returns slot i's live value; the head says it has one.
func (c *CachePrc) liveValue(i uint32) processor.Value { return c.exec.live[i].v }

// encodeLive returns slot i's live value encoded, valid until the next call.
func (c *CachePrc) encodeLive(i uint32) []byte {
	c.exec.enc = c.liveValue(i).AppendEncoded(c.exec.enc[:0])
	if cap(c.exec.enc) > 4<<20 {
		defer func() { c.exec.enc = nil }() // one large value does not pin memory
	}
	return c.exec.enc
}

// livePanicked handles a processor that panicked on slot i's live value: the value is dropped
// and, if it was the head of pending requests, they are dropped with it (dropUnsent: those no
// commit carries fail; the head goes back to what the commit in flight leaves, or the durable
// value).
func (c *CachePrc) livePanicked(i uint32) {
	if fl := c.flights[i]; fl != nil && len(fl.ops) > 0 && fl.head.src == headLive {
		c.dropUnsent(i, fl, task.CodeInternal, errHandlerPanicked)
	}
	c.dropLive(i)
}
