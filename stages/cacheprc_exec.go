package stages

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/task"
)

// exec: a processor (package processor) run on one key, where the data lives. It takes the
// path of every other operation on the key (serve, then execute: a cold key is loaded first),
// so it runs atomically and in order with them, on the key's head: the value every request
// before it left, durable or not (cacheprc_write.go). processor.Call runs it on this loop; a Set
// or a Delete becomes the key's head like a set or a delete (durable before the reply, a new
// version, pushed to subscribers), and an Unchanged call is answered in its turn (at once if
// nothing is pending on the key), the reply carrying the result either way.

// ExecObserver is told how long each processor call took, for metrics (a histogram). CachePrc
// calls it on its loop, after every call that ran a processor: it must not block.
type ExecObserver interface {
	ObserveExec(took time.Duration)
}

// defaultProcBudget is CacheConfig.ProcBudget's default.
const defaultProcBudget = 10 * time.Millisecond

// execState is what CachePrc keeps for exec. Loop goroutine only.
type execState struct {
	procs  *processor.Registry
	limits processor.Limits
	out    processor.Output // one per loop, reused by every call
	result []byte           // a call's result, kept aside while its new value becomes the head
	enc    []byte           // a live value encoded for a caller that needs bytes (headValue)
	// The live values (processor.Type): decoded once, changed in place by each call, encoded
	// once per commit (cacheprc_live.go). A key's live value, if any, is its head while it has
	// pending requests, and its durable value otherwise.
	live    map[uint32]liveEntry
	liveMem int64 // what the live values hold, counted in the memory budget
}

// The kinds of exec error counted, in CacheStats order.
const (
	execUnknown = iota
	execBadArgs
	execWrongType
	execTooLarge
	execOverBudget
	execInternal
	numExecErrors
)

// execCodes maps a processor error's kind to its wire code.
var execCodes = [...]task.Code{
	processor.KindInternal:   task.CodeInternal,
	processor.KindBadArgs:    task.CodeBadRequest,
	processor.KindWrongType:  task.CodeWrongType,
	processor.KindTooLarge:   task.CodeTooLarge,
	processor.KindOverBudget: task.CodeOverBudget,
}

// execCounted maps a processor error's kind to its counter.
var execCounted = [...]int{
	processor.KindInternal:   execInternal,
	processor.KindBadArgs:    execBadArgs,
	processor.KindWrongType:  execWrongType,
	processor.KindTooLarge:   execTooLarge,
	processor.KindOverBudget: execOverBudget,
}

// newExecState resolves the exec part of cfg (after setDefaults).
func newExecState(cfg *CacheConfig) execState {
	procs := cfg.Processors
	if procs == nil {
		procs = processor.Default()
	}
	lim := processor.Limits{MaxValue: cfg.MaxValue, MaxSteps: cfg.ProcMaxSteps, MaxTime: cfg.ProcBudget}
	if lim.MaxTime < 0 {
		lim.MaxTime = 0 // no time budget
	}
	return execState{procs: procs, limits: lim, live: make(map[uint32]liveEntry)}
}

// execKnown answers t (unknown_processor) and reports false if it names no registered
// processor: checked before the key is looked up, so a junk name never makes a store load.
func (c *CachePrc) execKnown(t *task.Task) bool {
	if _, ok := c.exec.procs.Lookup(string(t.Proc)); ok {
		return true
	}
	c.stats.execs.Add(1)
	c.stats.execErrors[execUnknown].Add(1)
	c.fail(t, task.CodeUnknownProc, fmt.Errorf("no processor %q on this server (it has: %s)",
		t.Proc, strings.Join(c.exec.procs.Names(), ", ")))
	return false
}

// runExec runs t's processor on slot i's head v (cacheprc_write.go).
func (c *CachePrc) runExec(i uint32, t *task.Task, v view) {
	c.stats.execs.Add(1)
	fn, typ, ok := c.exec.procs.LookupType(string(t.Proc))
	switch {
	case !ok: // unregistered since serve checked: impossible, the registry only grows
		c.stats.execErrors[execUnknown].Add(1)
		c.refuse(i, t, task.CodeUnknownProc, fmt.Errorf("no processor %q on this server", t.Proc))
		return
	case c.feedDown:
		c.refuse(i, t, task.CodeUnavailable, errors.New("the store is unreachable and the cached copy may be stale: exec runs only on current data"))
		return
	}
	if typ != nil {
		c.runLive(i, t, v, typ)
		return
	}
	in := processor.Input{Key: c.tab.keyOf(i), Exists: v.present, Args: t.Value, Now: c.loop.Clock().Time()}
	if v.present {
		in.Value = c.headValue(i)
	}
	out := &c.exec.out
	st, err := processor.Call(fn, in, c.exec.limits, out)
	c.observeExec(st)
	if err != nil {
		c.execFailed(i, t, err)
		return
	}
	// The result may alias the arguments (t.Value) or the head's value: keep it aside while
	// the new value (which may alias them too) becomes the head.
	c.exec.result = append(c.exec.result[:0], out.Result...)
	switch out.Action {
	case processor.Set:
		expireAt := int64(0) // a key a processor creates has no TTL; one it changes keeps its own
		if v.present {
			expireAt = v.expireAt
		}
		c.applyChange(i, t, newHead{value: out.Value, expireAt: expireAt})
	case processor.Delete:
		c.applyChange(i, t, newHead{del: true})
	default:
		t.Version = 0
		if v.present {
			t.Version = v.version
		}
		t.Value = append(t.Value[:0], c.exec.result...)
		c.respond(i, t)
		c.keepResultSmall()
		return
	}
	t.Value = append(t.Value[:0], c.exec.result...)
	c.keepResultSmall()
}

func (c *CachePrc) observeExec(st processor.Stats) {
	c.stats.execNanos.Add(uint64(st.Elapsed))
	if c.cfg.ExecObserver != nil {
		c.cfg.ExecObserver.ObserveExec(st.Elapsed)
	}
}

// keepResultSmall drops the result buffer after one large result, so that it does not pin memory.
func (c *CachePrc) keepResultSmall() {
	if cap(c.exec.result) > 64<<10 {
		c.exec.result = nil
	}
}

// execFailed answers t, in its turn, with the code of the processor's error; nothing changed.
func (c *CachePrc) execFailed(i uint32, t *task.Task, err error) {
	kind := processor.KindOf(err)
	c.stats.execErrors[execCounted[kind]].Add(1)
	var pe *processor.PanicError
	switch {
	case errors.As(err, &pe):
		c.log.Error("processor panicked: its request failed, the key is unchanged", "proc", string(t.Proc),
			"key", string(c.tab.keyOf(i)), "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	case kind == processor.KindInternal:
		c.log.Error("processor failed", "proc", string(t.Proc), "key", string(c.tab.keyOf(i)), "err", err)
	}
	c.refuse(i, t, execCodes[kind], fmt.Errorf("exec %s: %w", t.Proc, err))
}
