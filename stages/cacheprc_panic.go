package stages

import (
	"errors"

	"github.com/pipecache/pipecache/task"
)

// A handler that panics must not leave a key wedged (its in-flight record waiting forever) nor
// a request unanswered. The loop recovers the panic and calls onPanic with the task it was
// handling; CachePrc then resets the keys involved and answers the request it was executing.

var errHandlerPanicked = errors.New("the server failed handling this request (logged); the key was reset")

// onPanic runs on the loop after a handler panicked while handling t (a request or a
// completion). Every request waiting on the keys involved is answered with CodeInternal, their
// cached entries are dropped (the store has the truth; the next access reloads) unless a load or
// write is still in flight at Outgoing, and the request being executed is answered if nothing
// else answered it.
func (c *CachePrc) onPanic(t *task.Task) {
	if t.Op == task.OpStore {
		c.commitPanicked()
		return
	}
	req := c.executing
	c.resetKey(t.Key, t)
	if req != nil && req != t {
		c.resetKey(req.Key, t)
	}
	if req != nil {
		if part, ok := req.Ctx.(*mgetPart); ok {
			c.failUnrequested(part.st) // the mget's remaining per-key gets never ran
		}
	}
	if c.executing != nil {
		c.fail(c.executing, task.CodeInternal, errHandlerPanicked)
	}
	c.executing = nil
}

// resetKey answers everything waiting on key with CodeInternal and forgets its entry. If panicked
// is the completion of the key's load, that load is over. Requests applied to the key and not
// durable yet are answered too, without being taken back: those a commit carries commit or fail
// as they would have, and the ones after are dropped (dropUnsent), since the panic may have
// left the key's head half changed.
func (c *CachePrc) resetKey(key []byte, panicked *task.Task) {
	i := c.tab.lookup(key)
	if i == 0 {
		return
	}
	if fl := c.flights[i]; fl != nil {
		if fl.load == panicked {
			c.loop.Wheel().Cancel(&fl.timeout)
			fl.load = nil
		}
		if len(fl.ops) > 0 {
			c.dropUnsent(i, fl, task.CodeInternal, errHandlerPanicked)
			for j := range fl.ops {
				if t := fl.ops[j].t; t != nil {
					fl.ops[j].t = nil
					c.fail(t, task.CodeInternal, errHandlerPanicked)
				}
			}
		}
		if fl.load == nil {
			c.failAll(i, task.CodeInternal, errHandlerPanicked)
			c.settle(i)
		}
	}
	if c.flights[i] == nil {
		c.removeSlot(i)
	}
}

// failUnrequested answers the per-key gets of an mget that a panic kept from running, so that
// the mget itself is answered.
func (c *CachePrc) failUnrequested(st *mgetState) {
	for st.next < len(st.subs) {
		sub := st.subs[st.next]
		st.next++
		c.fail(sub, task.CodeInternal, errHandlerPanicked)
	}
}
