package stages

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log lines a stranger can cause (a bad frame, a refused hello, a full send queue) must not
// become a flood: a hostile client could otherwise fill the disk and slow every loop that logs.
// limitedHandler lets through, per message, a burst of logBurst lines and then logRate per
// second; the next line let through carries how many were suppressed before it. Debug lines are
// never limited (an operator asked for them with SIGUSR1).

const (
	logBurst = 20
	logRate  = 5 // lines per second per message, once the burst is spent
)

type limitedHandler struct {
	next  slog.Handler
	state *limits // shared by the handlers WithAttrs and WithGroup derive
}

type limits struct {
	mu   sync.Mutex // guards msgs; taken by every loop that logs, rarely contended
	msgs map[string]*msgLimit
}

type msgLimit struct {
	tokens     float64
	at         time.Time
	suppressed int
}

// newLimitedHandler wraps next with per-message rate limits.
func newLimitedHandler(next slog.Handler) *limitedHandler {
	return &limitedHandler{next: next, state: &limits{msgs: map[string]*msgLimit{}}}
}

// LimitLogs returns log with its handler rate-limited (once: a limited logger is returned as is).
func LimitLogs(log *slog.Logger) *slog.Logger {
	if _, ok := log.Handler().(*limitedHandler); ok {
		return log
	}
	return slog.New(newLimitedHandler(log.Handler()))
}

func (h *limitedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return h.next.Handle(ctx, r)
	}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	suppressed, ok := h.state.allow(r.Message, now)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

// allow reports whether a line with msg may be written at now, and how many were suppressed
// since the last one that was.
func (l *limits) allow(msg string, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.msgs[msg]
	if m == nil {
		m = &msgLimit{tokens: logBurst, at: now}
		l.msgs[msg] = m // messages are constant strings: the map stays small
	}
	m.tokens = min(logBurst, m.tokens+now.Sub(m.at).Seconds()*logRate)
	m.at = now
	if m.tokens < 1 {
		m.suppressed++
		return 0, false
	}
	m.tokens--
	n := m.suppressed
	m.suppressed = 0
	return n, true
}

func (h *limitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitedHandler{next: h.next.WithAttrs(attrs), state: h.state}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{next: h.next.WithGroup(name), state: h.state}
}
