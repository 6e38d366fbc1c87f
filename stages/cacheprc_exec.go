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
// path of every other operation on the key (serve, then execute: a cold key is loaded first, a
// key with a load or write in flight makes it wait), so it runs atomically and in order with
// them. processor.Call runs it on this loop with the cached value; an Unchanged call is
// answered at once, a Set or a Delete is written through like a set or a delete (CachePrc.write:
// durable before the reply, a new version, pushed to subscribers), the reply carrying the
// result either way.

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
	result []byte           // the result of a call whose write is being sent (write may fail it)
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
	return execState{procs: procs, limits: lim}
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

// runExec runs t's processor on slot i, whose state is known and which has nothing in flight.
func (c *CachePrc) runExec(i uint32, t *task.Task, present bool) {
	c.stats.execs.Add(1)
	fn, ok := c.exec.procs.Lookup(string(t.Proc))
	switch {
	case !ok: // unregistered since serve checked: impossible, the registry only grows
		c.stats.execErrors[execUnknown].Add(1)
		c.fail(t, task.CodeUnknownProc, fmt.Errorf("no processor %q on this server", t.Proc))
		return
	case c.feedDown:
		c.fail(t, task.CodeUnavailable, errors.New("the store is unreachable and the cached copy may be stale: exec runs only on current data"))
		return
	}
	s := c.tab.slot(i)
	in := processor.Input{Key: c.tab.key(s), Exists: present, Args: t.Value, Now: c.loop.Clock().Time()}
	if present {
		in.Value = c.tab.value(s)
	}
	out := &c.exec.out
	st, err := processor.Call(fn, in, c.exec.limits, out)
	c.stats.execNanos.Add(uint64(st.Elapsed))
	if c.cfg.ExecObserver != nil {
		c.cfg.ExecObserver.ObserveExec(st.Elapsed)
	}
	if err != nil {
		c.execFailed(t, s, err)
		return
	}
	switch out.Action {
	case processor.Set:
		expireAt := int64(0) // a key a processor creates has no TTL; one it changes keeps its own
		if present {
			expireAt = s.expireAt
		}
		c.execWrite(i, t, out.Value, expireAt, false)
	case processor.Delete:
		c.execWrite(i, t, nil, 0, true)
	default:
		t.Version = 0
		if present {
			t.Version = s.version
		}
		t.Value = append(t.Value[:0], out.Result...) // may alias the arguments: append moves
		c.reply(t)
	}
}

// execWrite writes a processor's new value (or delete) through to the store for t; the reply,
// once the write is durable (stored), carries the result.
func (c *CachePrc) execWrite(i uint32, t *task.Task, value []byte, expireAt int64, del bool) {
	// The result may alias the arguments (t.Value) or the cached value: keep it aside while
	// write copies the new value (which may alias them too) into the store's task.
	c.exec.result = append(c.exec.result[:0], c.exec.out.Result...)
	if c.write(i, t, value, expireAt, del) {
		t.Value = append(t.Value[:0], c.exec.result...)
	}
	if cap(c.exec.result) > 64<<10 {
		c.exec.result = nil // one large result does not pin memory
	}
}

// execFailed answers t with the code of the processor's error; nothing changed.
func (c *CachePrc) execFailed(t *task.Task, s *slot, err error) {
	kind := processor.KindOf(err)
	c.stats.execErrors[execCounted[kind]].Add(1)
	var pe *processor.PanicError
	switch {
	case errors.As(err, &pe):
		c.log.Error("processor panicked: its request failed, the key is unchanged", "proc", string(t.Proc),
			"key", string(c.tab.key(s)), "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	case kind == processor.KindInternal:
		c.log.Error("processor failed", "proc", string(t.Proc), "key", string(c.tab.key(s)), "err", err)
	}
	c.fail(t, execCodes[kind], fmt.Errorf("exec %s: %w", t.Proc, err))
}
