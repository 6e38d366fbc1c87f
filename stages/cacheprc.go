package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/processor"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
)

// CacheConfig configures CachePrc. Zero values mean the defaults.
type CacheConfig struct {
	Memory       int64         // budget for keys, values and entry overhead; default 256 MiB
	NegativeTTL  time.Duration // how long "absent in the store" is cached; default 2 s
	TTLJitter    float64       // TTLs are stretched by up to this fraction at random; default 0.1
	StoreTimeout time.Duration // a load or write not done by then is answered "timeout"; default 2 s
	Queue        int           // capacity of each inbound queue; default 16384
	MaxKey       int           // largest key in an mget; default 250 (the daemon passes Incoming's)
	// StaleReads: while a shared store is unreachable (or its change feed behind), reads of
	// cached keys are answered from the cache, flagged stale, instead of "unavailable".
	StaleReads bool

	// Processors are the processors exec may run; nil: processor.Default() (hash, list, zset).
	Processors *processor.Registry
	// MaxValue bounds what a processor writes and returns; default 1 MiB (the daemon passes
	// Incoming's -max-value). Over it, the call fails with too_large.
	MaxValue int
	// ProcBudget is the time budget of one processor call, checked after it returns (a call
	// cannot be pre-empted); default 10 ms, negative: none. Over it, over_budget.
	ProcBudget time.Duration
	// ProcMaxSteps is the step budget of one call (processor.Output.Charge); 0: none.
	ProcMaxSteps int64
	// ExecObserver, if set, is told how long each processor call took (metrics).
	ExecObserver ExecObserver

	// MaxPending bounds the requests a key holds applied in memory and waiting for the store;
	// default 4096. MaxPendingBytes bounds what they hold; default 16 MiB. A request beyond
	// either is answered busy.
	MaxPending      int
	MaxPendingBytes int

	// Kill switches, one per feature.
	NoNegativeCache bool // do not cache absence (every miss for an absent key reaches the store)
	NoTTLJitter     bool // use TTLs exactly as given

	// Info, if set, adds the rest of the server's state to the stats op's reply. The daemon
	// wires it to read the other stages' published counters; it runs on this stage's loop, so
	// it must not block.
	Info func() ServerInfo

	// Loop is the loop that hosts the stage (the daemon's mapping: daemon/pipeline.go); nil: a
	// loop of its own.
	Loop   *loop.Loop
	Logger *slog.Logger
}

func (c *CacheConfig) setDefaults() {
	if c.Memory <= 0 {
		c.Memory = 256 << 20
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 2 * time.Second
	}
	if c.TTLJitter <= 0 {
		c.TTLJitter = 0.1
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 2 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = 1 << 14
	}
	if c.MaxKey <= 0 {
		c.MaxKey = 250
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4096
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 16 << 20
	}
	if c.ProcBudget == 0 {
		c.ProcBudget = defaultProcBudget
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// inflight is what a key needs while the store has work of its for it: a load in flight and the
// requests waiting for it, or requests applied in memory whose changes are not durable yet
// (cacheprc_write.go). It holds pointers, so it exists only while a key has such work (pooled),
// never for every cached item.
type inflight struct {
	slot    uint32
	load    *task.Task   // the load at Outgoing, nil if none
	waiters []*task.Task // requests waiting for the key's value to be known or, in serial mode, for its change to be durable; arrival order
	timeout timer.Timer  // fires if the load takes longer than StoreTimeout
	late    bool         // the load has timed out (logged once)
	// A change by another writer seen by the feed while a load or a change of ours was in
	// flight: applied (as a dropped entry) afterwards, if it is newer than what ours left.
	foreign       uint64
	foreignDelete bool

	ops   []pendingOp  // requests applied to head and not answered yet, in arrival order
	sent  int          // ops[:sent] ride the commit in flight
	head  headState    // the key as ops left it (valid while ops is not empty)
	dirty bool         // ops holds changes no commit carries yet: the key is in CachePrc.dirty
	batch *commitBatch // the batch whose write of the key carries ops[:sent] (open or at the committer); nil: none
	pos   int          // the index of that write in batch
	bytes int          // what the ops' requests hold (MaxPendingBytes)
}

// CachePrc owns the cached data: every operation on it runs on this stage's loop, so nothing is
// locked. Misses go to Outgoing (one load per key however many wait for it); writes are applied
// in memory in arrival order and go to Outgoing's committer in group commits, each answered
// once the commit that carries it is durable (cacheprc_write.go). Readers see durable values.
type CachePrc struct {
	cfg      CacheConfig
	log      *slog.Logger
	stage    *loop.Stage // the stage on its loop: its queues and hooks
	loop     *loop.Loop  // the loop that hosts it (and maybe other stages)
	requests *loop.Queue // from Incoming
	done     *loop.Queue // completions from Outgoing
	toStore  *loop.Queue // Outgoing's inbound queue (loads)
	commits  *CommitPort // Outgoing's committer (group commits)
	replies  *loop.Queue // Incoming's reply queue

	tab         *table               // the keys, values, LRU and expiry (cache_table.go)
	flights     map[uint32]*inflight // slots with an operation at Outgoing, or waiting behind one
	freeFlights []*inflight
	sweep       timer.Timer // fires when the earliest expiry bucket is due
	nextVersion uint64
	rng         *rand.Rand
	events      *loop.Queue // SessionMgr's queue, for change events
	eventBudget *byteBudget // bounds the values of events in flight to SessionMgr
	listening   func() bool // whether any session subscribes
	// Replies and change events are kept, in order, when Incoming or SessionMgr is full, and a
	// reply waits behind the events before it: a write's acknowledgment never reaches a client
	// before its change event reaches the subscribers' streams (the SDK's near cache relies on
	// it). Loads and writes that Outgoing has no room for are refused (busy) instead.
	toReplies *loop.Outbox
	toEvents  *loop.Outbox
	draining  bool // the requests queue is closed: close Outgoing's once nothing is in flight
	storeGone bool // Outgoing's queue has been closed
	inflight  int  // loads at Outgoing, and batches published and not back

	// The write path (cacheprc_write.go, committer.go).
	open        *commitBatch // the batch being filled: published in the port's slot until the committer takes it
	freeBatches []*commitBatch
	applying    *commitBatch     // the batch whose outcomes applyBatch is applying
	batchNext   int              // the next write of applying whose outcome applyBatch applies
	dirty       []uint32         // keys with changes for the next commit, in the order they changed
	flushEntry  timer.ReadyEntry // flush at the end of the iteration
	commitTimer timer.Timer      // fires when the oldest pending request has waited StoreTimeout for the store
	commitLate  bool             // a pending request has timed out since the last commit came back (logged once)
	feedDown    bool             // a shared store's feed is incomplete: cached copies may be stale
	// executing is the client request being handled, until it is answered: if a handler
	// panics, onPanic answers it (cacheprc_panic.go).
	executing *task.Task
	testHook  func(*task.Task) // tests only: called before each operation runs
	exec      execState        // the processors, their limits and the call's working state (cacheprc_exec.go)

	stats cacheCounters
}

type cacheCounters struct {
	gets, hits, misses, negativeHits, sets, deletes atomic.Uint64
	loads, stores, evictions, expirations, timeouts atomic.Uint64
	foreign, staleReads                             atomic.Uint64
	execs, execNanos                                atomic.Uint64
	execErrors                                      [numExecErrors]atomic.Uint64
	unreachable                                     atomic.Int64
	items, bytes                                    atomic.Int64
}

// CacheStats is a snapshot of CachePrc's counters, also returned by the stats op (as JSON).
type CacheStats struct {
	Gets         uint64 `json:"gets"`
	Hits         uint64 `json:"hits"`
	Misses       uint64 `json:"misses"`
	NegativeHits uint64 `json:"negative_hits"`
	Sets         uint64 `json:"sets"`
	Deletes      uint64 `json:"deletes"`
	Loads        uint64 `json:"store_loads"`
	Stores       uint64 `json:"store_writes"`
	Evictions    uint64 `json:"evictions"`
	Expirations  uint64 `json:"expirations"`
	Timeouts     uint64 `json:"store_timeouts"`
	Foreign      uint64 `json:"foreign_changes"`   // changes by other writers (the store's feed) applied here
	StaleReads   uint64 `json:"stale_reads"`       // reads answered from the cache while the shared store was unreachable
	Unreachable  int64  `json:"store_unreachable"` // 1 while the shared store is unreachable (or its feed behind), else 0
	Items        int64  `json:"items"`
	Bytes        int64  `json:"bytes"`
	// exec: the requests, their errors by kind (nothing changed), and the time processors ran.
	Execs          uint64 `json:"execs"`
	ExecUnknown    uint64 `json:"exec_unknown_processor"`
	ExecBadArgs    uint64 `json:"exec_bad_args"`
	ExecWrongType  uint64 `json:"exec_wrong_type"`
	ExecTooLarge   uint64 `json:"exec_too_large"`
	ExecOverBudget uint64 `json:"exec_over_budget"`
	ExecInternal   uint64 `json:"exec_internal"` // panics included
	ExecNanos      uint64 `json:"exec_ns"`       // wall time spent in processors, in nanoseconds
}

// NewCachePrc creates the stage with its two inbound queues (Requests, Completions);
// startVersion is the highest version the store has seen. Connect it before Start.
func NewCachePrc(cfg CacheConfig, startVersion uint64) (*CachePrc, error) {
	cfg.setDefaults()
	c := &CachePrc{
		cfg: cfg, log: cfg.Logger.With("stage", "cacheprc"), nextVersion: startVersion,
		tab: newTable(), flights: make(map[uint32]*inflight),
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	c.exec = newExecState(&cfg)
	c.sweep.Fn = c.sweepExpired
	c.flushEntry.Fn = c.flush
	c.commitTimer.Fn = c.commitTimedOut
	var err error
	if c.requests, err = loop.NewQueue("cacheprc.requests", cfg.Queue); err != nil {
		return nil, err
	}
	if c.done, err = loop.NewQueue("cacheprc.completions", cfg.Queue); err != nil {
		return nil, err
	}
	c.stage, err = hostStage(cfg.Loop, loop.Config{Name: "cacheprc", Logger: cfg.Logger, PipelineClose: true},
		loop.StageConfig{Name: "cacheprc", Stage: task.StageCachePrc, OnPanic: c.onPanic, OnQueueClosed: c.queueClosed})
	if err == nil {
		c.loop = c.stage.Loop()
		err = c.stage.AddQueue(c.requests, c.request)
	}
	if err == nil {
		err = c.stage.AddQueue(c.done, c.completion)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Connect sets where loads go (Outgoing's queue), where group commits go (Outgoing's
// committer) and where replies go (Incoming's). Call before Start.
func (c *CachePrc) Connect(toStore *loop.Queue, commits *CommitPort, replies *loop.Queue) {
	c.toStore, c.commits, c.replies = toStore, commits, replies
	c.toReplies = loop.NewOutbox(c.loop, replies.Push, c.toEvents)
}

// ConnectEvents sets where change events go (SessionMgr's queue) and how to tell whether anyone
// listens (events are made only then). Call before Start; without it no events are made.
func (c *CachePrc) ConnectEvents(events *loop.Queue, listening func() bool, budget *byteBudget) {
	c.events, c.listening, c.eventBudget = events, listening, budget
	c.toEvents = loop.NewOutbox(c.loop, events.Push, nil)
	if c.replies != nil {
		c.toReplies = loop.NewOutbox(c.loop, c.replies.Push, c.toEvents)
	}
}

// Start runs the stage.
func (c *CachePrc) Start() error {
	if c.toStore == nil || c.commits == nil || c.replies == nil {
		return errors.New("stages: cacheprc: Connect before Start")
	}
	return c.stage.Start()
}

// Stopping, in pipeline order (daemon.go): when the daemon closes the requests queue, CachePrc
// finishes what it was given, and once nothing is in flight at Outgoing it closes Outgoing's
// queue; Outgoing commits what it has and closes CachePrc's completions after the last one;
// CachePrc then delivers its last replies and events and closes SessionMgr's queue.

func (c *CachePrc) queueClosed(q *loop.Queue) {
	switch q {
	case c.requests:
		c.draining = true
		c.closeStoreIfDone()
	case c.done:
		// The last replies and events leave without waiting (their stages may be on this very
		// loop): toReplies finishes once toEvents, which it waits behind, has too.
		c.toReplies.Finish(func() {
			stageFinished("cacheprc")
			if c.events != nil {
				c.loop.CloseQueue(c.events)
			}
		})
	}
}

// closeStoreIfDone closes Outgoing's queue once the requests are done and nothing is in flight
// or waiting for a commit.
func (c *CachePrc) closeStoreIfDone() {
	if !c.draining || c.storeGone || c.inflight > 0 || c.hasDirty() {
		return
	}
	c.storeGone = true
	if err := c.toStore.Close(context.Background()); err != nil && !errors.Is(err, loop.ErrQueueClosed) {
		c.log.Warn("closing outgoing's queue", "err", err)
	}
}

// Requests returns the queue Incoming routes data operations to.
func (c *CachePrc) Requests() *loop.Queue { return c.requests }

// Completions returns the queue Outgoing answers into.
func (c *CachePrc) Completions() *loop.Queue { return c.done }

// Loop returns the loop that hosts the stage.
func (c *CachePrc) Loop() *loop.Loop { return c.loop }

// Stage returns the stage on its loop (for its own stats).
func (c *CachePrc) Stage() *loop.Stage { return c.stage }

// Config returns the stage's configuration, with its defaults resolved.
func (c *CachePrc) Config() CacheConfig { return c.cfg }

// Stats returns the counters. Safe for concurrent use.
func (c *CachePrc) Stats() CacheStats {
	s := &c.stats
	return CacheStats{
		Gets: s.gets.Load(), Hits: s.hits.Load(), Misses: s.misses.Load(), NegativeHits: s.negativeHits.Load(),
		Sets: s.sets.Load(), Deletes: s.deletes.Load(), Loads: s.loads.Load(), Stores: s.stores.Load(),
		Evictions: s.evictions.Load(), Expirations: s.expirations.Load(), Timeouts: s.timeouts.Load(), Foreign: s.foreign.Load(),
		StaleReads: s.staleReads.Load(), Unreachable: s.unreachable.Load(),
		Items: s.items.Load(), Bytes: s.bytes.Load(),
		Execs: s.execs.Load(), ExecUnknown: s.execErrors[execUnknown].Load(), ExecBadArgs: s.execErrors[execBadArgs].Load(),
		ExecWrongType: s.execErrors[execWrongType].Load(), ExecTooLarge: s.execErrors[execTooLarge].Load(),
		ExecOverBudget: s.execErrors[execOverBudget].Load(), ExecInternal: s.execErrors[execInternal].Load(),
		ExecNanos: s.execNanos.Load(),
	}
}

// nowMs is the cached clock as unix milliseconds (the store's time base).
func (c *CachePrc) nowMs() int64 { return c.loop.Clock().Time().UnixMilli() }

// request handles a client's data operation.
func (c *CachePrc) request(t *task.Task) {
	prev := c.executing // an mget's per-key gets are requests within a request
	c.executing = t
	c.serve(t)
	c.executing = prev
}

func (c *CachePrc) serve(t *task.Task) {
	switch t.Op {
	case task.OpStats:
		c.replyStats(t)
		return
	case task.OpMGet, task.OpExists:
		c.mget(t)
		return
	case task.OpScan:
		c.scan(t)
		return
	case task.OpExec:
		if !c.execKnown(t) {
			return
		}
	}
	i := c.tab.lookup(t.Key)
	if i == 0 {
		if t.Op == task.OpSet {
			// A blind set needs no load. The entry stays unknown until the write is durable, so
			// a failed write leaves nothing behind (see afterCommit).
			i = c.newSlot(t.Key)
			c.execute(i, t)
			if c.flights[i] == nil {
				c.removeSlot(i)
			}
			return
		}
		c.load(c.newSlot(t.Key), t)
		return
	}
	c.tab.touch(i)
	if c.waits(i, t) {
		fl := c.flights[i]
		fl.waiters = append(fl.waiters, t)
		return
	}
	c.execute(i, t)
}

// waits reports whether t must wait behind slot i's work in flight: a read until the key's
// durable value is known; any other request until its head is (a load in flight) and, in
// serial mode, until the key has nothing pending.
func (c *CachePrc) waits(i uint32, t *task.Task) bool {
	fl := c.flights[i]
	if fl == nil {
		return false
	}
	loading := c.tab.slot(i).state == stateLoading
	if isRead(t.Op) {
		return loading
	}
	return loading && len(fl.ops) == 0 || c.serial() && len(fl.ops) > 0
}

// execute runs t against slot i: a read against the durable value, anything else against the
// head (cacheprc_write.go). Slot i does not make t wait (waits).
func (c *CachePrc) execute(i uint32, t *task.Task) {
	if c.testHook != nil {
		c.testHook(t)
	}
	now := c.nowMs()
	switch t.Op {
	case task.OpGet:
		c.get(i, t, now)
		return
	case task.OpTTL, task.OpType:
		c.inspect(i, t, now)
		return
	}
	if c.overPending(i, t) {
		return
	}
	v := c.viewOf(i, now)
	switch t.Op {
	case task.OpSet:
		c.applyChange(i, t, newHead{value: t.Value, expireAt: c.expiry(t.TTLms, now), keep: true})
	case task.OpAdd:
		if v.present {
			c.refuse(i, t, task.CodeExists, fmt.Errorf("key %q exists", c.tab.keyOf(i)))
			return
		}
		c.applyChange(i, t, newHead{value: t.Value, expireAt: c.expiry(t.TTLms, now), keep: true})
	case task.OpReplace, task.OpCAS:
		switch {
		case !v.present:
			c.refuse(i, t, task.CodeNotFound, nil)
		case t.Op == task.OpCAS && t.Version != v.version:
			c.refuse(i, t, task.CodeVersionMismatch, fmt.Errorf("key %q is at version %d, not %d", c.tab.keyOf(i), v.version, t.Version))
		default:
			c.applyChange(i, t, newHead{value: t.Value, expireAt: c.expiry(t.TTLms, now), keep: true})
		}
	case task.OpDelete:
		if !v.present {
			c.refuse(i, t, task.CodeNotFound, nil)
			return
		}
		c.applyChange(i, t, newHead{del: true})
	case task.OpIncr:
		c.incr(i, t, v)
	case task.OpExec:
		c.runExec(i, t, v)
	case task.OpTouch:
		if !v.present {
			c.refuse(i, t, task.CodeNotFound, nil)
			return
		}
		c.applyChange(i, t, newHead{touch: true, expireAt: c.expiry(t.TTLms, now)})
	default:
		c.fail(t, task.CodeUnknownOp, fmt.Errorf("cacheprc does not serve %s", t.Op))
	}
}

// get answers a read with slot i's durable value: never one a pending write may still take
// back (PROTOCOL.md, "Writes and what readers see").
func (c *CachePrc) get(i uint32, t *task.Task, now int64) {
	c.stats.gets.Add(1)
	s, present, ok := c.durable(i, t, now)
	if !ok {
		return
	}
	if !present {
		c.stats.negativeHits.Add(1)
		c.fail(t, task.CodeNotFound, nil)
		return
	}
	c.stats.hits.Add(1)
	t.Value = append(t.Value[:0], c.tab.value(s)...)
	t.Version = s.version
	c.reply(t)
}

// durable returns slot i's durable value for a read at now (ttl and type too), expiring it
// first if it is past its deadline, and whether it is present. While the shared store is
// unreachable a read is answered unavailable (ok false) unless stale reads are allowed; then
// t is flagged stale.
func (c *CachePrc) durable(i uint32, t *task.Task, now int64) (s *slot, present, ok bool) {
	t.Flags &^= task.FlagStale
	if c.feedDown {
		if !c.cfg.StaleReads {
			c.fail(t, task.CodeUnavailable, errors.New("the store is unreachable and the cached copy may be stale (start with -stale-reads to serve it)"))
			return nil, false, false
		}
		c.stats.staleReads.Add(1)
		t.Flags |= task.FlagStale
	}
	s = c.tab.slot(i)
	if s.state == statePresent && s.expireAt != 0 && s.expireAt <= now {
		if fl := c.flights[i]; fl == nil || len(fl.ops) == 0 {
			c.expire(i) // past its deadline: subscribers are told now
		}
	}
	return s, s.state == statePresent && (s.expireAt == 0 || s.expireAt > now), true
}

// overPending answers t busy, and reports true, if slot i holds as many pending requests, or
// as many bytes of them, as a key may.
func (c *CachePrc) overPending(i uint32, t *task.Task) bool {
	fl := c.flights[i]
	if fl == nil || len(fl.ops) < c.cfg.MaxPending && fl.bytes+len(t.Value) <= c.cfg.MaxPendingBytes {
		return false
	}
	c.fail(t, task.CodeBusy, fmt.Errorf("key %q has %d writes waiting for the store (%d bytes); at most %d (%d bytes)",
		c.tab.keyOf(i), len(fl.ops), fl.bytes, c.cfg.MaxPending, c.cfg.MaxPendingBytes))
	return true
}

// expiry turns a TTL into an absolute deadline, stretched by up to TTLJitter so that keys
// written together do not expire together.
func (c *CachePrc) expiry(ttlMs, now int64) int64 {
	if ttlMs <= 0 {
		return 0
	}
	if !c.cfg.NoTTLJitter {
		ttlMs += int64(float64(ttlMs) * c.cfg.TTLJitter * c.rng.Float64())
	}
	return now + ttlMs
}

func (c *CachePrc) reply(t *task.Task) {
	if t == c.executing {
		c.executing = nil // answered
	}
	if _, ok := t.Ctx.(*mgetPart); ok {
		c.subDone(t)
		return
	}
	c.toReplies.Push(t)
}

func (c *CachePrc) fail(t *task.Task, code task.Code, err error) {
	t.Fail(code, err)
	t.Value = t.Value[:0]
	c.reply(t)
}

// emit sends a change event (a set, delete or expiry of key at version) to SessionMgr, if any
// session listens. Events keep their order: when SessionMgr is full they wait in its outbox.
func (c *CachePrc) emit(key []byte, version uint64, kind uint32, value []byte) {
	if c.events == nil || !c.listening() {
		return
	}
	ev := task.Get()
	ev.Op, ev.Version, ev.Kind = task.OpPush, version, kind
	ev.Key = append(ev.Key, key...)
	if kind == task.PushSet {
		if c.eventBudget.take(len(value)) {
			ev.Value = append(ev.Value, value...) // SessionMgr gives the bytes back
		} else {
			ev.Kind |= task.PushNoValue // too much in flight: subscribers read the key instead
		}
	}
	c.toEvents.Push(ev)
}
