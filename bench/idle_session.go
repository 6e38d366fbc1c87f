package bench

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/pipecache/pipecache/client/kcpnet"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// A session's states.
const (
	stClosed uint8 = iota // no conversation: waiting in the open queue (or never to open again)
	stHello               // a hello in flight on conn
	stLive                // established: heartbeats
	stBye                 // a goodbye in flight (the end of the run)
	stFailed              // refused for good (a wrong token): not opened again
)

// idleSession is one session of an idle run, and its current conversation. Small on purpose:
// a million of them live in one slice.
type idleSession struct {
	mu       sync.Mutex // guards everything below; taken by the engine loop, the opener, the beater
	idx      int32
	state    uint8
	slot     bool  // holds a token of Idle.slots (a hello or goodbye in flight)
	resuming bool  // the hello in flight carries the resume token
	storm    bool  // dropped by the storm and not back yet
	missed   uint8 // heartbeats unanswered when the next was due, in a row
	conn     *kcpnet.Conn
	id       uint64 // the server's session id (0: none yet)
	resume   string // the session's resume token
	reqID    uint64 // the last request id used on conn (hello is the first)
	helloID  uint64 // the hello in flight
	beatID   uint64 // the last heartbeat sent, until answered (0: none unanswered)
	statsID  uint64 // the stats request in flight (session 0 only)
	at       int64  // when the hello, heartbeat or goodbye in flight was sent (run clock)
}

// idleCounters are the run's counters, updated from every goroutine of the run.
type idleCounters struct {
	live, opened, hellos, helloTimeouts, reopens, resets, resumed, expired atomic.Int64
	silent, lost, refused, beats, beatOK, beatLate, noSession, sendErrors  atomic.Int64
	unexpected, goodbyes                                                   atomic.Int64
	helloFail, beatFail                                                    [maxCode + 1]atomic.Int64
}

// maxCode is the highest result code counted by itself; higher ones are counted with it.
const maxCode = 31

func codeIndex(c task.Code) int { return min(int(c), maxCode) }

// IdleCounts are an idle run's counters.
type IdleCounts struct {
	Live          int64 `json:"sessions_live"`      // sessions established now
	Opened        int64 `json:"sessions_opened"`    // new sessions the server gave (first hellos, and after an expiry)
	Hellos        int64 `json:"hellos"`             // hellos sent (new and resuming)
	HelloTimeouts int64 `json:"hello_timeouts"`     // hellos unanswered within HelloTimeout
	Reopens       int64 `json:"reopens"`            // conversations opened again for a session
	Resets        int64 `json:"resets"`             // goodbyes with id 0 and a code: the server dropped the conversation
	Resumed       int64 `json:"resumed"`            // resuming hellos the server accepted
	Expired       int64 `json:"expired"`            // resuming hellos refused (session expired): a new session followed
	Silent        int64 `json:"silent"`             // conversations given up after MaxMissed heartbeats unanswered
	Lost          int64 `json:"conversations_lost"` // conversations the engine closed under us (refused, bad stream)
	Refused       int64 `json:"refused"`            // of those, by an ICMP port unreachable (nothing listening)
	Heartbeats    int64 `json:"heartbeats"`         // heartbeats sent
	HeartbeatOK   int64 `json:"heartbeat_replies"`  // heartbeats answered (the round trips measured)
	HeartbeatLate int64 `json:"heartbeat_late"`     // replies to a heartbeat after a newer one was sent
	NoSession     int64 `json:"heartbeat_no_session"`
	SendErrors    int64 `json:"send_errors"`       // sends the engine refused (a full send queue)
	Unexpected    int64 `json:"unexpected_frames"` // frames none of the above (undecodable, pushes, unknown ids)
	Goodbyes      int64 `json:"goodbyes"`          // goodbyes answered at the end
	// HelloFailures and HeartbeatErrors count error replies by code name.
	HelloFailures   map[string]int64 `json:"hello_failures,omitempty"`
	HeartbeatErrors map[string]int64 `json:"heartbeat_errors,omitempty"`
}

func (c *idleCounters) snapshot() IdleCounts {
	return IdleCounts{Live: c.live.Load(), Opened: c.opened.Load(), Hellos: c.hellos.Load(),
		HelloTimeouts: c.helloTimeouts.Load(), Reopens: c.reopens.Load(), Resets: c.resets.Load(),
		Resumed: c.resumed.Load(), Expired: c.expired.Load(), Silent: c.silent.Load(), Lost: c.lost.Load(),
		Refused: c.refused.Load(), Heartbeats: c.beats.Load(), HeartbeatOK: c.beatOK.Load(),
		HeartbeatLate: c.beatLate.Load(), NoSession: c.noSession.Load(), SendErrors: c.sendErrors.Load(),
		Unexpected: c.unexpected.Load(), Goodbyes: c.goodbyes.Load(),
		HelloFailures: byCode(&c.helloFail), HeartbeatErrors: byCode(&c.beatFail)}
}

func byCode(counts *[maxCode + 1]atomic.Int64) map[string]int64 {
	var m map[string]int64
	for i := range counts {
		if n := counts[i].Load(); n > 0 {
			if m == nil {
				m = map[string]int64{}
			}
			m[task.Code(i).String()] = n
		}
	}
	return m
}

// appendRequest appends a frame of op (no key, no value) with request id id.
func appendRequest(dst []byte, op task.Op, id uint64) []byte {
	frame, _ := wire.AppendFrame(dst, &wire.Header{V: wire.Version, Op: op, ID: id}, nil)
	return frame
}

// sendHello sends s a hello on c: resuming if s has a token. Caller holds s.mu; buf belongs to
// the calling goroutine.
func (r *Idle) sendHello(s *idleSession, c *kcpnet.Conn, buf *[]byte) {
	s.reqID++
	s.helloID, s.at, s.resuming, s.state = s.reqID, r.now(), s.resume != "", stHello
	hello := wire.HelloRequest{Name: idleName, Token: r.cfg.Token, HeartbeatMs: r.cfg.Heartbeat.Milliseconds(),
		Resume: s.resume}
	// Cannot fail: HelloSize is within the framing's limits (IdleConfig's check).
	*buf, _ = wire.AppendHello((*buf)[:0], &wire.Header{V: wire.Version, Op: task.OpHello, ID: s.helloID}, hello,
		r.cfg.HelloSize)
	r.c.hellos.Add(1)
	r.waitHello(s, s.helloID, s.at)
	r.send(c, *buf)
}

func (r *Idle) send(c *kcpnet.Conn, frame []byte) {
	if c == nil {
		return
	}
	r.countSendErr(c.Send(frame))
}

// queue queues frame on c for the next flush (c nil: nowhere, as send).
func (r *Idle) queue(c *kcpnet.Conn, frame []byte) {
	if c == nil {
		return
	}
	r.countSendErr(c.Queue(frame))
}

// countSendErr counts a send the engine refused (not one on a conversation closed meanwhile).
func (r *Idle) countSendErr(err error) {
	if err != nil && !errors.Is(err, kcpnet.ErrClosed) {
		r.c.sendErrors.Add(1)
	}
}

// Frame implements kcpnet.Handler: a frame from the server, on the engine's loop goroutine.
func (r *Idle) Frame(c *kcpnet.Conn, body []byte) {
	s, _ := c.Ctx().(*idleSession)
	if s == nil {
		r.c.unexpected.Add(1)
		return
	}
	r.frame(s, c, body)
}

// frame handles one frame of s's conversation c. Engine loop only (it uses r.hdr, r.loopBuf).
func (r *Idle) frame(s *idleSession, c *kcpnet.Conn, body []byte) {
	h := &r.hdr
	value, err := wire.Decode(body, h)
	if err != nil {
		r.c.unexpected.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != c {
		return // a conversation already given up
	}
	switch {
	case h.ID == 0 && h.Op == task.OpGoodbye && h.Code != task.CodeOK:
		// The server dropped the conversation (expired, or it does not know it): open a fresh
		// one and resume, as the SDK does.
		r.c.resets.Add(1)
		r.drop(s, false)
	case s.state == stHello && h.ID == s.helloID && h.ID != 0:
		r.helloReply(s, c, h, value)
	case s.state == stLive && h.Op == task.OpHeartbeat && h.ID != 0:
		r.heartbeatReply(s, c, h)
	case h.Op == task.OpStats && h.ID == s.statsID && h.ID != 0:
		s.statsID = 0
		r.statsReply(h, value)
	case s.state == stBye && h.Op == task.OpGoodbye && h.ID == s.reqID:
		r.c.goodbyes.Add(1)
		r.drop(s, false) // stopping: closes, does not reopen
	default:
		r.c.unexpected.Add(1)
	}
}

// helloReply takes the answer to s's hello. Caller holds s.mu.
func (r *Idle) helloReply(s *idleSession, c *kcpnet.Conn, h *wire.Header, value []byte) {
	r.releaseSlot(s)
	r.record(r.hist.hello, nil, r.now()-s.at)
	switch {
	case h.Code == task.CodeOK:
		var rep wire.HelloReply
		if err := json.Unmarshal(value, &rep); err != nil || rep.Session == 0 || rep.Resume == "" {
			r.c.helloFail[codeIndex(task.CodeInternal)].Add(1) // a reply we cannot use
			r.drop(s, true)
			return
		}
		r.established(s, &rep)
	case h.Code == task.CodeUnauthorized && s.resuming:
		// The session expired meanwhile: start a new one on this conversation, as the SDK does.
		r.c.expired.Add(1)
		s.resume = ""
		r.sendHello(s, c, &r.loopBuf)
	case h.Code == task.CodeUnauthorized:
		r.c.helloFail[codeIndex(h.Code)].Add(1)
		r.drop(s, false)
		s.state = stFailed // a wrong token: trying again would only be refused again
	default:
		r.c.helloFail[codeIndex(h.Code)].Add(1)
		r.drop(s, true)
	}
}

// established makes s live after its hello succeeded. Caller holds s.mu.
func (r *Idle) established(s *idleSession, rep *wire.HelloReply) {
	same := s.resuming && rep.Resumed && rep.Session == s.id
	switch {
	case same:
		r.c.resumed.Add(1)
	case s.resuming:
		r.c.expired.Add(1) // asked to resume, given a new session
		r.c.opened.Add(1)
	default:
		r.c.opened.Add(1)
	}
	if s.storm {
		s.storm = false
		r.stormBack(same, r.now())
	}
	s.id, s.resume, s.state, s.beatID, s.missed = rep.Session, rep.Resume, stLive, 0, 0
	if live := r.c.live.Add(1); live == int64(len(r.sess)) {
		r.allOpenAt.CompareAndSwap(0, r.now())
	}
	if rep.HeartbeatMs > 0 {
		r.noteCycle(time.Duration(rep.HeartbeatMs) * time.Millisecond)
	}
}

// noteCycle takes a negotiated heartbeat interval: the scheduler beats at the shortest seen.
func (r *Idle) noteCycle(d time.Duration) {
	for {
		old := r.cycle.Load()
		if old != 0 && old <= int64(d) || r.cycle.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// heartbeatReply takes the answer to one of s's heartbeats. Caller holds s.mu.
func (r *Idle) heartbeatReply(s *idleSession, c *kcpnet.Conn, h *wire.Header) {
	switch {
	case h.Code == task.CodeOK && h.ID == s.beatID:
		r.record(r.hist.beat, r.hist.beatSince, r.now()-s.at)
		r.c.beatOK.Add(1)
		s.beatID, s.missed = 0, 0
	case h.Code == task.CodeOK:
		r.c.beatLate.Add(1) // an older one: the server is there all the same
		s.missed = 0
	case h.Code == task.CodeUnauthorized:
		// The server knows the conversation but not its session: hello again on it, resuming.
		r.c.noSession.Add(1)
		r.c.live.Add(-1)
		s.beatID = 0
		r.sendHello(s, c, &r.loopBuf)
	default:
		r.c.beatFail[codeIndex(h.Code)].Add(1)
	}
}

// record adds a latency (ns) to h, and to since if not nil.
func (r *Idle) record(h, since *hdrhistogram.Histogram, ns int64) {
	us := max(1, ns/int64(time.Microsecond))
	r.hist.mu.Lock()
	h.RecordValue(us)
	if since != nil {
		since.RecordValue(us)
	}
	r.hist.mu.Unlock()
}

// Closed implements kcpnet.Handler: the engine ended a conversation (on its loop).
func (r *Idle) Closed(c *kcpnet.Conn, reason error) {
	s, _ := c.Ctx().(*idleSession)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != c {
		return // we gave it up ourselves
	}
	if !r.stopping.Load() {
		r.c.lost.Add(1)
		if errors.Is(reason, kcpnet.ErrRefused) {
			r.c.refused.Add(1)
		}
	}
	r.drop(s, true)
}

// drop gives up s's conversation and, unless the run is stopping, queues s to open again: at
// once, or after retryDelay if later. Caller holds s.mu.
func (r *Idle) drop(s *idleSession, later bool) {
	if s.state == stLive {
		r.c.live.Add(-1)
	}
	r.releaseSlot(s)
	c := s.conn
	s.conn, s.state, s.beatID, s.statsID, s.missed = nil, stClosed, 0, 0, 0
	if c != nil {
		c.Close()
	}
	if !r.stopping.Load() {
		r.q.again(s.idx, later, r.now())
	}
}

func (r *Idle) releaseSlot(s *idleSession) {
	if s.slot {
		s.slot = false
		<-r.slots
	}
}
