package task

import (
	"fmt"
	"net/netip"
	"sync"
)

// Op is the operation a task carries.
type Op uint8

// Operations. Client requests first, then the pipeline's internal operations.
const (
	OpNone Op = iota

	// Requests that any session may send.
	OpPing // liveness, answered by the first stage that sees it
	OpEcho // returns its value; proves the path through the pipeline

	// Data operations, owned by CachePrc.
	OpGet
	OpMGet
	OpSet
	OpAdd
	OpReplace
	OpCAS
	OpDelete
	OpIncr
	OpTouch
	OpStats
	OpExec // run a processor (package processor) on a key: Proc names it, Value holds its arguments
	// Key inspection (PROTOCOL.md, "Finding and inspecting keys").
	OpScan   // a step of a cursor over the store's keys; served by Outgoing's workers
	OpTTL    // a key's remaining time to live
	OpType   // a key's kind: plain, or a built-in processor's encoding
	OpExists // how many of the keys exist

	// Session operations, owned by SessionMgr.
	OpHello
	OpHeartbeat
	OpGoodbye
	OpSubscribe
	OpUnsubscribe
	OpAck // the last push sequence number a subscriber processed; no reply

	// Requests the network stage answers itself.
	OpSlowLog // the slowest recent requests (the slow log, owned by Incoming)
	OpInfo    // the server's state as text sections, Redis's INFO (the daemon's Snapshot, read on Incoming's loop)

	// Server-initiated and internal operations. Every operation a client may send comes before
	// OpPush (Incoming's per-op counters rely on it).
	OpPush       // a change event on its way to a subscriber
	OpLoad       // CachePrc → Outgoing: read a key from the store
	OpStore      // CachePrc → Outgoing: write a key through to the store
	OpChanged    // Outgoing → CachePrc: the store's change feed saw a key change (any writer)
	OpFeedResync // Outgoing → CachePrc: the feed missed changes (etcd compacted): drop everything
	OpFeedState  // Outgoing → CachePrc: the feed is complete (Code OK) or not (CodeUnavailable)
	OpLease      // SessionMgr → Incoming → SessionMgr: when did this session's conversation last hear from its client?
	OpDrop       // SessionMgr → Incoming: the session is gone: say so to the client and close Conn

	// Control operations, consumed by the stage loop itself and never seen by handlers.
	OpStop    // poison pill: the last task a queue will ever deliver
	OpBarrier // a barrier: signals once every task queued before it has been handled

	numOps
)

var opNames = [numOps]string{
	OpNone: "none", OpPing: "ping", OpEcho: "echo",
	OpGet: "get", OpMGet: "mget", OpSet: "set", OpAdd: "add", OpReplace: "replace",
	OpCAS: "cas", OpDelete: "delete", OpIncr: "incr", OpTouch: "touch", OpStats: "stats", OpExec: "exec",
	OpScan: "scan", OpTTL: "ttl", OpType: "type", OpExists: "exists",
	OpHello: "hello", OpHeartbeat: "heartbeat", OpGoodbye: "goodbye",
	OpSubscribe: "subscribe", OpUnsubscribe: "unsubscribe", OpAck: "ack", OpSlowLog: "slowlog", OpInfo: "info",
	OpPush: "push", OpLoad: "load", OpStore: "store", OpChanged: "changed",
	OpFeedResync: "feed-resync", OpFeedState: "feed-state", OpLease: "lease", OpDrop: "drop",
	OpStop: "stop", OpBarrier: "barrier",
}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// IsControl reports whether o is consumed by the stage loop rather than by a stage's handler.
func (o Op) IsControl() bool { return o == OpStop || o == OpBarrier }

// IsInternal reports whether o only ever travels between stages, never on the wire.
func (o Op) IsInternal() bool { return o >= OpLoad }

// Flags of requests and replies, as on the wire (Task.Flags; wire.Check lets a request carry
// only those its op defines).
const (
	FlagPrefix    uint32 = 1 << 0 // subscribe/unsubscribe: Key is a prefix
	FlagStatsText uint32 = 1 << 0 // stats request: the reply may carry text values (version), not only integers
	FlagMustExist uint32 = 1 << 0 // incr request: a missing key is not_found (memcached's incr), not a counter from 0
	FlagWithValue uint32 = 1 << 1 // subscribe: pushes of sets carry the new value
	FlagBehind    uint32 = 1 << 2 // heartbeat reply: changes wait for room in the session's push window
	FlagStale     uint32 = 1 << 3 // get/mget reply: served from the cache while the shared store is unreachable
)

// The kind of a push (Task.Kind, written as the push's flags on the wire): one of the kinds in
// the low byte, with PushCoalesced and PushNoValue.
const (
	PushSet       uint32 = 1      // the key was set (Version is the new version)
	PushDelete    uint32 = 2      // the key was deleted
	PushExpire    uint32 = 3      // the key expired
	PushResync    uint32 = 4      // events were lost; reload what you subscribed to
	PushKindMask  uint32 = 0xff   // the kind proper
	PushCoalesced uint32 = 1 << 8 // earlier versions of this key were skipped (slow subscriber)
	PushNoValue   uint32 = 1 << 9 // a set whose value was left out (over a budget): read the key
)

// Stage names a pipeline stage; it indexes Task.Enter.
type Stage uint8

// The four stages, in the order a request meets them.
const (
	StageIncoming Stage = iota
	StageSessionMgr
	StageCachePrc
	StageOutgoing
	NumStages
)

var stageNames = [NumStages]string{"incoming", "sessionmgr", "cacheprc", "outgoing"}

func (s Stage) String() string {
	if s < NumStages {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// Task is one request, reply, push or internal operation in flight between stages.
//
// A Task is owned by one stage at a time and is not safe for concurrent use; handing the pointer
// to a queue hands over ownership.
type Task struct {
	Op    Op
	Code  Code   // result; CodeOK until a stage says otherwise
	Flags uint32 // a request's or reply's flags, as on the wire (FlagPrefix...)
	Kind  uint32 // OpPush: the change's kind (PushSet...), as the push's flags on the wire
	ReqID uint64 // the client's request id, echoed on the reply

	Conn    uint64 // the transport conversation the request came on, where its reply goes
	Session uint64 // the session: a hello's reply, a lease check
	Version uint64 // the key's version: expected (CAS) on a request, current on a reply
	Seq     uint64 // per-session sequence number of a push; acknowledged by heartbeat and ack

	TTLms    int64 // a request's time to live, in milliseconds from now; 0 means none
	ExpireAt int64 // loads, stores, changes: the absolute deadline, unix milliseconds; 0 never
	// Delta: incr's amount, and the counter's value on its reply; on OpLease's reply, when the
	// conversation last heard from its client (loop clock ns).
	Delta  int64
	Delete bool // OpStore, OpChanged: a delete, not a write of Value

	Addr netip.AddrPort // OpHello: the client's address (SessionMgr names it in its log lines)

	Key   []byte // reused across the task's lives: fill with append(t.Key[:0], ...)
	Proc  []byte // OpExec: the processor's name; reused like Key
	Value []byte // reused like Key; large buffers are dropped on Put
	Err   error  // detail for a non-OK Code, for logs and the error message on the wire

	// Enter records when the task first entered each stage, in the nanoseconds of that stage's
	// cached clock (timer.Clock.Nanos): for Incoming, when it decoded a request (a reply coming
	// back through Incoming's queue keeps it). Zero means the task never entered the stage. Clocks of different
	// stages share an epoch, so differences give per-stage latency.
	Enter [NumStages]int64
	// Queued is when the task was handed to the queue it waits in, in the producer loop's cached
	// clock (loop.Outbox stamps it, as Incoming does for a request it forwards); the consuming
	// loop measures the wait and clears it. Zero: not measured.
	Queued int64

	// Ctx carries a value private to the stage that owns the task (for example an mget's
	// state), never interpreted by other stages.
	Ctx any

	done func() // set on OpBarrier tasks: called once the barrier has passed
}

// keepBuffer is the largest Key/Value capacity kept when a task returns to the pool. Larger
// buffers (big values) are released so the pool does not pin memory.
const keepBuffer = 64 << 10

var pool = sync.Pool{New: func() any { return new(Task) }}

// Get returns a zeroed task from the pool. Its Key and Value have length 0 but may have capacity.
func Get() *Task {
	return pool.Get().(*Task)
}

// Put zeroes t and returns it to the pool. The caller must own t and must not use it afterwards.
func Put(t *Task) {
	key, value, proc := t.Key[:0], t.Value[:0], t.Proc[:0]
	if cap(key) > keepBuffer {
		key = nil
	}
	if cap(value) > keepBuffer {
		value = nil
	}
	if cap(proc) > keepBuffer {
		proc = nil
	}
	*t = Task{Key: key, Value: value, Proc: proc}
	pool.Put(t)
}

// NewBarrier returns a barrier task that calls done once it has passed through a stage loop
// (that is, after every task queued before it was handled and that iteration's ReadyTimer ran).
func NewBarrier(done func()) *Task {
	t := Get()
	t.Op = OpBarrier
	t.done = done
	return t
}

// BarrierFunc returns the callback of a barrier task (nil for other tasks), to be called once the
// barrier has passed. Stage loops use it; take it before returning the task to the pool.
func (t *Task) BarrierFunc() func() { return t.done }

// Fail sets a non-OK code and its detail.
func (t *Task) Fail(c Code, err error) {
	t.Code, t.Err = c, err
}

func (t *Task) String() string {
	return fmt.Sprintf("task{op=%s req=%d conn=%d key=%q code=%s}", t.Op, t.ReqID, t.Conn, t.Key, t.Code)
}
