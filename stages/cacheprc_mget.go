package stages

import (
	"errors"
	"fmt"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// mgetState gathers the results of an mget's per-key gets.
type mgetState struct {
	parent  *task.Task
	subs    []*task.Task // the per-key gets, requested in order
	next    int          // subs[next:] are not requested yet
	results []mgetResult
	pending int
	failed  task.Code // the first error other than not-found, if any
	stale   bool      // some key was served stale (the shared store is unreachable)
	err     error
}

// mgetPart is the Ctx of one key's get inside an mget: which mget, which key.
type mgetPart struct {
	st *mgetState
	i  int
}

type mgetResult struct {
	found   bool
	version uint64
	value   []byte
}

// mget runs one get per key (for exists too: its reply counts them, replyExists) through the normal request path (so a cold key loads once and a
// key with a write in flight waits for it) and answers when all are in.
func (c *CachePrc) mget(t *task.Task) {
	keys, err := wire.SplitKeys(t.Value, c.cfg.MaxKey)
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		c.fail(t, task.CodeTooLarge, err)
		return
	case err != nil:
		c.fail(t, task.CodeBadRequest, err)
		return
	case len(keys) == 0 && t.Op == task.OpExists:
		c.fail(t, task.CodeBadRequest, errors.New("exists needs at least one key"))
		return
	case len(keys) == 0:
		t.Value = t.Value[:0]
		c.reply(t)
		return
	}
	st := &mgetState{parent: t, results: make([]mgetResult, len(keys)), pending: len(keys)}
	st.subs = make([]*task.Task, len(keys))
	for i, k := range keys { // copy the keys out of t.Value before the sub-gets run
		sub := task.Get()
		sub.Op, sub.Ctx = task.OpGet, &mgetPart{st, i}
		sub.Key = append(sub.Key, k...)
		st.subs[i] = sub
	}
	if c.executing == t {
		c.executing = nil // its per-key gets answer it
	}
	for st.next < len(st.subs) {
		sub := st.subs[st.next]
		st.next++
		c.request(sub)
	}
	st.subs = nil
}

// subDone records one key's result; the last one answers the mget.
func (c *CachePrc) subDone(sub *task.Task) {
	part := sub.Ctx.(*mgetPart)
	st := part.st
	st.stale = st.stale || sub.Flags&task.FlagStale != 0
	switch sub.Code {
	case task.CodeOK:
		st.results[part.i] = mgetResult{found: true, version: sub.Version, value: append([]byte(nil), sub.Value...)}
	case task.CodeNotFound:
	default:
		if st.failed == task.CodeOK {
			st.failed, st.err = sub.Code, fmt.Errorf("key %q: %w", sub.Key, sub.Err)
		}
	}
	task.Put(sub)
	if st.pending--; st.pending > 0 {
		return
	}
	t := st.parent
	if st.failed != task.CodeOK {
		c.fail(t, st.failed, st.err)
		return
	}
	t.Value = t.Value[:0]
	if t.Op == task.OpExists {
		c.replyExists(t, st)
		return
	}
	if t.Flags &^= task.FlagStale; st.stale {
		t.Flags |= task.FlagStale
	}
	for _, r := range st.results {
		t.Value = wire.AppendMGetResult(t.Value, r.found, r.version, r.value)
	}
	if len(t.Value) > wire.MaxValue {
		c.fail(t, task.CodeTooLarge, fmt.Errorf("mget reply of %d bytes over %d", len(t.Value), wire.MaxValue))
		return
	}
	c.reply(t)
}
