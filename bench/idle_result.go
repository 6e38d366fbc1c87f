package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/pipecache/pipecache/task"
)

// result assembles what the run measured, before the goodbyes.
func (r *Idle) result(elapsed time.Duration, rep *reporter) IdleResult {
	c := r.c.snapshot()
	es := r.eng.Stats()
	res := IdleResult{Server: r.addr.String(), Sessions: len(r.sess), HeartbeatMs: r.cycle.Load() / int64(time.Millisecond),
		SourceIPs: len(r.cfg.SourceIPs), Sockets: es.Sockets, Seconds: elapsed.Seconds(), IdleCounts: c,
		Storm: r.stormResult(), DatagramsIn: es.DatagramsIn, DatagramsOut: es.DatagramsOut, Compacted: es.Compacted,
		RecvCalls: es.RecvCalls, SendCalls: es.SendCalls,
		Warnings: rep.warnings}
	res.OpenRate = float64(c.Opened) / res.Seconds
	if at := r.allOpenAt.Load(); at > 0 {
		res.OpenSeconds = seconds(at)
		res.OpenRate = float64(len(r.sess)) / res.OpenSeconds
	} else {
		res.Warnings = append(res.Warnings, fmt.Sprintf("only %d of %d sessions were ever open at once", c.Live, len(r.sess)))
	}
	r.hist.mu.Lock()
	res.HelloP50, res.HelloP99 = msOf(r.hist.hello.ValueAtQuantile(50)), msOf(r.hist.hello.ValueAtQuantile(99))
	h := r.hist.beat
	res.HeartbeatP50, res.HeartbeatP99, res.HeartbeatMax = msOf(h.ValueAtQuantile(50)), msOf(h.ValueAtQuantile(99)), msOf(h.Max())
	r.hist.mu.Unlock()
	now := r.now()
	if s := sampleProc(rep.self, now); s.ok {
		res.ClientRSS, res.ClientCPU = s.rss, cpuPct(rep.selfStart, s)
		if c.Live > 0 {
			res.ClientRSSPerSession = float64(s.rss) / float64(c.Live)
		}
		restEnd := rep.selfRestEnd
		if !restEnd.ok {
			restEnd = s
		}
		res.ClientCPURest = cpuPct(rep.selfRest, restEnd)
	}
	r.serverFigures(&res, rep, now)
	if st := r.srvStats.Load(); st != nil {
		res.ServerSessions, res.ServerConversations = (*st)["sessions"], (*st)["conversations"]
	}
	if r.cfg.Storm > 0 && res.Storm == nil {
		res.Warnings = append(res.Warnings, "the storm never began: not every session was open by the end")
	}
	return res
}

// serverFigures fills in the server's RSS and CPU.
func (r *Idle) serverFigures(res *IdleResult, rep *reporter, now int64) {
	end := sampleProc(rep.srv, now)
	if !end.ok || !rep.srvStart.ok {
		return
	}
	res.ServerRSSStart, res.ServerRSS = rep.srvStart.rss, end.rss
	if res.Live > 0 {
		res.ServerRSSPerSession = float64(end.rss-rep.srvStart.rss) / float64(res.Live)
	}
	res.ServerCPU = cpuPct(rep.srvStart, end)
	restEnd := rep.restEnd
	if !restEnd.ok {
		restEnd = end
	}
	if rep.restStart.ok {
		res.ServerCPURest, res.RestSeconds = cpuPct(rep.restStart, restEnd), seconds(restEnd.at-rep.restStart.at)
	}
}

// sayGoodbye ends every live session with a goodbye, at most MaxPending in flight, and waits
// (within goodbyeTimeout) for the answers. It returns how many were answered.
func (r *Idle) sayGoodbye() int64 {
	deadline := time.Now().Add(goodbyeTimeout)
	for i := range r.sess {
		if !r.takeSlotBy(deadline) {
			break
		}
		s := &r.sess[i]
		s.mu.Lock()
		if s.state != stLive {
			s.mu.Unlock()
			<-r.slots
			continue
		}
		r.c.live.Add(-1)
		s.reqID++
		s.state, s.slot = stBye, true
		r.goodbyeBuf = appendRequest(r.goodbyeBuf[:0], task.OpGoodbye, s.reqID)
		r.send(s.conn, r.goodbyeBuf)
		s.mu.Unlock()
	}
	// Every slot back: every goodbye answered (or the deadline).
	for range cap(r.slots) {
		if !r.takeSlotBy(deadline) {
			break
		}
	}
	return r.c.goodbyes.Load()
}

// takeSlotBy takes a slot, waiting until deadline at most.
func (r *Idle) takeSlotBy(deadline time.Time) bool {
	select {
	case r.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// ReportIdle writes an idle run's summary for people.
func ReportIdle(w io.Writer, res IdleResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("idle sessions against %s: %d asked, %d live at the end, heartbeat %d ms, %d source addresses, %d sockets, %.1f s",
		res.Server, res.Sessions, res.Live, res.HeartbeatMs, max(1, res.SourceIPs), res.Sockets, res.Seconds)
	p("  opening: %d new sessions, all open after %.1f s (%.0f/s); %d hellos, p50 %.2f ms, p99 %.2f ms; timeouts %d; failed: %s",
		res.Opened, res.OpenSeconds, res.OpenRate, res.Hellos, res.HelloP50, res.HelloP99, res.HelloTimeouts, orNone(codeList(res.HelloFailures)))
	p("  kept: %d heartbeats, %d answered, p50 %.2f ms, p99 %.2f ms, max %.1f ms; late %d, errors: %s",
		res.Heartbeats, res.HeartbeatOK, res.HeartbeatP50, res.HeartbeatP99, res.HeartbeatMax, res.HeartbeatLate, orNone(codeList(res.HeartbeatErrors)))
	p("  lost and found: resets %d, silent %d, conversations lost %d (refused %d), reopens %d, resumed %d, expired %d, send errors %d, unexpected frames %d",
		res.Resets, res.Silent, res.Lost, res.Refused, res.Reopens, res.Resumed, res.Expired, res.SendErrors, res.Unexpected)
	if s := res.Storm; s != nil {
		p("  storm at %.1f s: %d dropped, %d resumed, %d expired (new sessions), %d not back; all back after %.2f s; p50 %.0f ms, p99 %.0f ms, max %.0f ms",
			s.At, s.Sessions, s.Resumed, s.Expired, s.NotBack, s.Seconds, s.P50, s.P99, s.Max)
	}
	p("  client: RSS %s (%.0f B per live session), CPU %.1f%% over the run, %.1f%% at rest; %d datagrams in (%d recvmmsg), %d out (%d sendmmsg), %d conversations compacted",
		mib(res.ClientRSS), res.ClientRSSPerSession, res.ClientCPU, res.ClientCPURest, res.DatagramsIn, res.RecvCalls,
		res.DatagramsOut, res.SendCalls, res.Compacted)
	if res.ServerRSS > 0 {
		p("  server: RSS %s -> %s (%.0f B per live session), CPU %.1f%% over the run, %.1f%% at rest (%.0f s)",
			mib(res.ServerRSSStart), mib(res.ServerRSS), res.ServerRSSPerSession, res.ServerCPU, res.ServerCPURest, res.RestSeconds)
	}
	if res.ServerSessions > 0 {
		p("  server says: %d sessions, %d conversations", res.ServerSessions, res.ServerConversations)
	}
	p("  goodbyes answered: %d", res.Goodbyes)
	for _, w := range res.Warnings {
		p("  warning: %s", w)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
