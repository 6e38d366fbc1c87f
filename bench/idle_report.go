package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// IdleResult is what an idle-sessions run measured. Times in milliseconds unless the name
// says otherwise; CPU in percent of one core.
type IdleResult struct {
	Server      string  `json:"server"`       // the address
	Sessions    int     `json:"sessions"`     // asked for
	HeartbeatMs int64   `json:"heartbeat_ms"` // negotiated (0: no hello was answered)
	SourceIPs   int     `json:"source_ips"`
	Sockets     int     `json:"sockets"` // the engine's UDP sockets
	Seconds     float64 `json:"seconds"`
	OpenSeconds float64 `json:"open_seconds"` // until every session was open at once (0: never)
	OpenRate    float64 `json:"open_rate"`    // new sessions per second until then (or over the run)
	IdleCounts
	HelloP50     float64 `json:"hello_p50_ms"`
	HelloP99     float64 `json:"hello_p99_ms"`
	HeartbeatP50 float64 `json:"heartbeat_p50_ms"`
	HeartbeatP99 float64 `json:"heartbeat_p99_ms"`
	HeartbeatMax float64 `json:"heartbeat_max_ms"`

	ClientRSS           int64   `json:"client_rss_bytes"` // this process, at the end
	ClientRSSPerSession float64 `json:"client_rss_per_session_bytes"`
	ClientCPU           float64 `json:"client_cpu_pct"`      // this process, over the run
	ClientCPURest       float64 `json:"client_cpu_rest_pct"` // and at rest (as ServerCPURest)
	// The server's process (IdleConfig.PID): resident memory when the run began and at its
	// end, the growth per live session, CPU over the run and at rest: from the moment every
	// session was open to the storm or the end (RestSeconds long).
	ServerRSSStart      int64   `json:"server_rss_start_bytes,omitempty"`
	ServerRSS           int64   `json:"server_rss_bytes,omitempty"`
	ServerRSSPerSession float64 `json:"server_rss_per_session_bytes,omitempty"`
	ServerCPU           float64 `json:"server_cpu_pct,omitempty"`
	ServerCPURest       float64 `json:"server_cpu_rest_pct,omitempty"`
	RestSeconds         float64 `json:"rest_seconds,omitempty"`
	// From the server's stats reply (IdleConfig.ServerStats), the last one received.
	ServerSessions      int64 `json:"server_sessions,omitempty"`
	ServerConversations int64 `json:"server_conversations,omitempty"`

	Storm *StormResult `json:"storm,omitempty"`

	DatagramsIn  uint64 `json:"datagrams_in"`
	DatagramsOut uint64 `json:"datagrams_out"`
	RecvCalls    uint64 `json:"recv_calls"`              // recvmmsg system calls of the engine
	SendCalls    uint64 `json:"send_calls"`              // sendmmsg system calls of the engine
	Compacted    int    `json:"conversations_compacted"` // idle KCP states released, at the end

	Warnings []string `json:"warnings,omitempty"`
}

// procSample is one reading of a process's /proc/PID/status (RSS) and /proc/PID/stat (CPU).
type procSample struct {
	ok  bool
	at  int64   // run clock
	cpu float64 // user+system seconds
	rss int64   // bytes
}

func sampleProc(p *procfs.Proc, at int64) procSample {
	if p == nil {
		return procSample{}
	}
	st, err := p.Stat()
	if err != nil {
		return procSample{}
	}
	status, err := p.NewStatus()
	if err != nil {
		return procSample{}
	}
	return procSample{ok: true, at: at, cpu: st.CPUTime(), rss: int64(status.VmRSS)}
}

// cpuPct is the CPU used between two samples, in percent of one core.
func cpuPct(a, b procSample) float64 {
	if !a.ok || !b.ok || b.at <= a.at {
		return 0
	}
	return 100 * (b.cpu - a.cpu) / seconds(b.at-a.at)
}

// reporter writes the progress lines and keeps the samples the result needs. Its run
// goroutine only, until Run reads it after that goroutine ended.
type reporter struct {
	r         *Idle
	w         io.Writer
	self, srv *procfs.Proc
	// Samples of the server (srv...) and of this process (self...): when the run began, when
	// every session was first open, when the storm began, at the last progress line.
	srvStart, restStart, restEnd, last         procSample
	selfStart, selfRest, selfRestEnd, selfLast procSample
	lastOpened                                 int64
	lastBeats                                  int64
	lastAt                                     int64
	warnings                                   []string
}

func newReporter(r *Idle, w io.Writer) *reporter {
	rep := &reporter{r: r, w: w}
	if p, err := procfs.Self(); err == nil {
		rep.self = &p
	}
	if r.cfg.PID > 0 {
		p, err := procfs.NewProc(r.cfg.PID)
		if err == nil {
			rep.srv = &p
		} else {
			rep.warnings = append(rep.warnings, fmt.Sprintf("server process %d: %v", r.cfg.PID, err))
		}
	}
	rep.srvStart, rep.selfStart = sampleProc(rep.srv, 0), sampleProc(rep.self, 0)
	rep.last, rep.selfLast = rep.srvStart, rep.selfStart
	if rep.srv != nil && !rep.srvStart.ok {
		rep.warnings = append(rep.warnings, fmt.Sprintf("server process %d: /proc unreadable", r.cfg.PID))
	}
	return rep
}

// reportPoll is how often the reporter looks for the moments it samples the server at.
const reportPoll = 100 * time.Millisecond

func (rep *reporter) run(ctx context.Context) {
	t := time.NewTicker(reportPoll)
	defer t.Stop()
	next := int64(rep.r.cfg.Progress)
	for {
		select {
		case <-ctx.Done():
			rep.noteMoments()
			return
		case <-t.C:
		}
		rep.noteMoments()
		if now := rep.r.now(); now >= next {
			next = now + int64(rep.r.cfg.Progress)
			rep.line(now)
			rep.r.askStats()
		}
	}
}

// noteMoments samples the server when every session is open, and when the storm begins.
func (rep *reporter) noteMoments() {
	r := rep.r
	if !rep.selfRest.ok && r.allOpenAt.Load() > 0 {
		rep.restStart, rep.selfRest = sampleProc(rep.srv, r.now()), sampleProc(rep.self, r.now())
	}
	if rep.selfRest.ok && !rep.selfRestEnd.ok && r.storm.startAt.Load() > 0 {
		rep.restEnd, rep.selfRestEnd = sampleProc(rep.srv, r.now()), sampleProc(rep.self, r.now())
	}
}

// line writes one progress line.
func (rep *reporter) line(now int64) {
	r, c := rep.r, rep.r.c.snapshot()
	dt := seconds(now - rep.lastAt)
	back := c.Opened + c.Resumed
	r.hist.mu.Lock()
	p99 := msOf(r.hist.beatSince.ValueAtQuantile(99))
	r.hist.beatSince.Reset()
	r.hist.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%7.1fs  live %d/%d  +%.0f/s  hellos %d", seconds(now), c.Live, len(r.sess), float64(back-rep.lastOpened)/dt, c.Hellos)
	if f := codeList(c.HelloFailures); f != "" {
		fmt.Fprintf(&b, " failed %s", f)
	}
	fmt.Fprintf(&b, " timeouts %d | resets %d reopens %d resumed %d expired %d silent %d | beats %.0f/s p99 %.1fms",
		c.HelloTimeouts, c.Resets, c.Reopens, c.Resumed, c.Expired, c.Silent, float64(c.Heartbeats-rep.lastBeats)/dt, p99)
	if s := sampleProc(rep.self, now); s.ok {
		fmt.Fprintf(&b, " | client %s cpu %.1f%%", mib(s.rss), cpuPct(rep.selfLast, s))
		rep.selfLast = s
	}
	fmt.Fprintf(&b, " compacted %d", r.eng.Stats().Compacted)
	if s := sampleProc(rep.srv, now); s.ok {
		fmt.Fprintf(&b, " | server %s", mib(s.rss))
		if c.Live > 0 && rep.srvStart.ok {
			fmt.Fprintf(&b, " %.0f B/session", float64(s.rss-rep.srvStart.rss)/float64(c.Live))
		}
		fmt.Fprintf(&b, " cpu %.1f%%", cpuPct(rep.last, s))
		rep.last = s
	}
	if st := r.srvStats.Load(); st != nil {
		fmt.Fprintf(&b, " | server sessions %d", (*st)["sessions"])
	}
	rep.lastOpened, rep.lastBeats, rep.lastAt = back, c.Heartbeats, now
	if rep.w != nil {
		fmt.Fprintln(rep.w, b.String())
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// codeList is "busy=3,unauthorized=1", in name order.
func codeList(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// askStats sends a stats request on the first session, if it is live and none is in flight.
// Reporter goroutine only.
func (r *Idle) askStats() {
	if !r.cfg.ServerStats {
		return
	}
	s := &r.sess[0]
	s.mu.Lock()
	if s.state != stLive || s.statsID != 0 {
		s.mu.Unlock()
		return
	}
	s.reqID++
	s.statsID = s.reqID
	c := s.conn
	r.reportBuf = appendRequest(r.reportBuf[:0], task.OpStats, s.statsID)
	s.mu.Unlock()
	r.send(c, r.reportBuf)
}

// statsReply keeps the server's stats (integers only: the request asks for no text values).
func (r *Idle) statsReply(h *wire.Header, value []byte) {
	if h.Code != task.CodeOK {
		return
	}
	var m map[string]int64
	if json.Unmarshal(value, &m) == nil {
		r.srvStats.Store(&m)
	}
}
