package stages

import (
	"context"
	"encoding/json"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport"
	"github.com/pipecache/pipecache/transport/wire"
)

// Every request Incoming answers is measured here, on Incoming's loop, as its reply is handed to
// the conversation: how long it took (from the moment Incoming decoded it), its result code,
// and, if it was slow, an entry in the slow log. The counters are per op and per code, each
// written by the loop alone (an atomic addition, no lock), and read by monitoring at scrape time
// (Incoming.Requests); the slow log is the loop's own and is read through the loop (SlowLog,
// and the slowlog op, which Incoming answers itself).

// reqOps is how many ops the per-op counters have room for: every op a client may send comes
// before task.OpPush. Slot 0 (task.OpNone) counts requests whose op was unknown or unreadable.
const reqOps = int(task.OpPush)

// reqCodes is how many result codes the per-code counters have room for; the last slot counts
// codes beyond (none yet).
const reqCodes = 32

// requestStats are Incoming's per-request counters. Written by Incoming's loop only.
type requestStats struct {
	durations [reqOps]loop.Histogram
	replies   [reqOps][reqCodes]atomic.Uint64
	slow      atomic.Uint64 // requests at or over the slow log's threshold
}

func opSlot(op task.Op) int {
	if int(op) >= reqOps {
		return 0
	}
	return int(op)
}

// observe counts one reply of op with code, which took ns since its request was decoded.
func (r *requestStats) observe(op task.Op, code task.Code, ns int64) {
	i := opSlot(op)
	r.durations[i].Observe(ns)
	r.replies[i][min(int(code), reqCodes-1)].Add(1)
}

// OpRequests is what Incoming counted of one op's requests.
type OpRequests struct {
	Op       string                 // the op's name; "unknown" for ops not served or unreadable
	Duration loop.HistogramSnapshot // decoded to reply handed to the conversation
	Replies  map[string]uint64      // replies by result code's name (ok, not_found...)
}

// RequestStats is a snapshot of Incoming's per-request counters.
type RequestStats struct {
	Ops  []OpRequests // ops that have had requests, in op order
	Slow uint64       // requests at or over the slow log's threshold
}

// Requests returns a snapshot of the per-request counters. Safe for concurrent use.
func (in *Incoming) Requests() RequestStats {
	r := &in.reqs
	out := RequestStats{Slow: r.slow.Load()}
	for i := range reqOps {
		h := r.durations[i].Snapshot()
		if h.Count() == 0 {
			continue
		}
		op := OpRequests{Op: task.Op(i).String(), Duration: h, Replies: map[string]uint64{}}
		if i == 0 {
			op.Op = "unknown"
		}
		for code := range reqCodes {
			if n := r.replies[i][code].Load(); n > 0 {
				op.Replies[task.Code(code).String()] = n
			}
		}
		out.Ops = append(out.Ops, op)
	}
	return out
}

// measure counts the reply t, just handed to c; a request at or over the threshold goes to the
// slow log. Loop goroutine only.
func (in *Incoming) measure(c *transport.Conn, t *task.Task) {
	decoded := t.Enter[task.StageIncoming]
	if decoded == 0 || t.Op >= task.OpPush {
		return // not a reply to a request (a push, an internal task)
	}
	ns := in.loop.Clock().Nanos() - decoded
	in.reqs.observe(t.Op, t.Code, ns)
	if in.slow.threshold > 0 && ns >= int64(in.slow.threshold) {
		in.reqs.slow.Add(1)
		in.slow.add(c, t, ns, in.loop.Clock().Time().Add(-time.Duration(ns)))
	}
}

// slowLogKey is the most of a key a slow log entry keeps.
const slowLogKey = 256

// slowLog is a ring of the most recent requests at or over the threshold. Incoming's loop
// only: readers go through the loop (Incoming.SlowLog).
type slowLog struct {
	threshold time.Duration // <= 0: off
	ring      []slowEntry   // len is the ring's size
	next      int           // where the next entry goes
	n         int           // entries held, at most len(ring)
}

type slowEntry struct {
	at      time.Time
	op      task.Op
	code    task.Code
	key     []byte // reused from entry to entry
	dur     int64
	queued  int64
	stage   task.Stage // the stage that served it; NumStages: Incoming itself
	client  netip.AddrPort
	session uint64
}

func newSlowLog(threshold time.Duration, size int) slowLog {
	if threshold == 0 {
		threshold = 10 * time.Millisecond
	}
	if size <= 0 {
		size = 128
	}
	return slowLog{threshold: threshold, ring: make([]slowEntry, size)}
}

// add records t, which took ns and was decoded at decoded.
func (s *slowLog) add(c *transport.Conn, t *task.Task, ns int64, decoded time.Time) {
	e := &s.ring[s.next]
	s.next = (s.next + 1) % len(s.ring)
	s.n = min(s.n+1, len(s.ring))
	e.at, e.op, e.code, e.dur, e.client = decoded, t.Op, t.Code, ns, c.Addr()
	e.key = append(e.key[:0], t.Key[:min(len(t.Key), slowLogKey)]...)
	e.session = connStateOf(c).session
	e.stage, e.queued = task.NumStages, 0
	for _, st := range []task.Stage{task.StageCachePrc, task.StageSessionMgr} {
		if at := t.Enter[st]; at != 0 {
			e.stage, e.queued = st, at-t.Enter[task.StageIncoming]
		}
	}
}

// entries returns the slow log, newest first.
func (s *slowLog) entries() []wire.SlowRequest {
	out := make([]wire.SlowRequest, 0, s.n)
	for i := 1; i <= s.n; i++ {
		e := &s.ring[(s.next-i+len(s.ring))%len(s.ring)]
		r := wire.SlowRequest{Time: e.at, Op: e.op.String(), Key: string(e.key), DurationUs: e.dur / 1e3,
			QueuedUs: max(e.queued, 0) / 1e3, Client: e.client.String(), Session: e.session, Code: e.code.String()}
		if e.stage < task.NumStages {
			r.Stage = e.stage.String()
		}
		out = append(out, r)
	}
	return out
}

// SlowLog returns the slow log, newest first. Safe for concurrent use: it is read on the loop.
func (in *Incoming) SlowLog(ctx context.Context) ([]wire.SlowRequest, error) {
	var out []wire.SlowRequest
	err := in.loop.Run(ctx, func() { out = in.slow.entries() })
	return out, err
}

// replyInfo answers the info op with cfg.Info's text for the section the request's value names.
// Answered here, on Incoming's loop, as the slow log is: the text is made of counters the
// stages publish atomically, so no stage's loop (CachePrc's least) is asked for anything.
func (in *Incoming) replyInfo(c *transport.Conn, st *connState, req *wire.Header, section []byte) {
	if in.cfg.Info == nil {
		in.refuse(c, st, req, task.CodeUnknownOp, "operation info is not served by this server")
		return
	}
	text, err := in.cfg.Info(string(section))
	if err != nil {
		in.refuse(c, st, req, task.CodeBadRequest, err.Error())
		return
	}
	h := wire.Header{V: wire.Version, Op: req.Op, ID: req.ID}
	in.send(c, &h, text)
	in.reqs.observe(req.Op, task.CodeOK, 0)
}

// replySlowLog answers the slowlog op from the loop's own slow log.
func (in *Incoming) replySlowLog(c *transport.Conn, req *wire.Header) {
	b, err := json.Marshal(in.slow.entries())
	if err != nil {
		in.replyError(c, req, task.CodeInternal, err.Error())
		return
	}
	h := wire.Header{V: wire.Version, Op: req.Op, ID: req.ID}
	in.send(c, &h, b)
	in.reqs.observe(req.Op, task.CodeOK, 0)
}
