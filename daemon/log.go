package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
)

// newHandler makes the log handler -log-format names: text (key=value) or json, one line per
// event. level nil means info.
func newHandler(format string, w io.Writer, level slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// logControl is what can change in the daemon's logging while it runs: the level (SIGUSR1,
// SIGUSR2, SIGHUP) and the format (SIGHUP). Every logger derived from log follows both. The
// goroutine of the signal (levelSignals, reloadSignals) changes them; any goroutine logs.
type logControl struct {
	log    *slog.Logger
	lv     *slog.LevelVar
	base   atomic.Int64 // the configured level: SIGUSR2 returns to it, SIGHUP may change it
	format atomic.Pointer[string]
	root   *switchRoot
	w      io.Writer
}

// newLogger makes the daemon's logger from -log-level and -log-format.
func newLogger(cfg *config, w io.Writer) (*logControl, error) {
	c := &logControl{lv: new(slog.LevelVar), root: &switchRoot{}, w: w}
	if err := c.set(cfg.logLevel, cfg.logFormat); err != nil {
		return nil, err
	}
	c.log = slog.New(&switchHandler{root: c.root})
	return c, nil
}

// checkLog checks -log-level and -log-format, and returns the level.
func checkLog(level, format string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("-log-level: %w", err)
	}
	_, err := newHandler(format, io.Discard, nil)
	return l, err
}

// set checks a level and a format and, if both are good, switches to them.
func (c *logControl) set(level, format string) error {
	l, err := checkLog(level, format)
	if err != nil {
		return err
	}
	h, _ := newHandler(format, c.w, c.lv)
	c.base.Store(int64(l))
	c.lv.Set(l)
	c.format.Store(&format)
	c.root.cur.Store(&h)
	return nil
}

// announce logs a change of the logging itself: at info whatever the level, in the format now
// in force.
func (c *logControl) announce(msg string, args ...any) {
	if h, err := newHandler(*c.format.Load(), c.w, nil); err == nil {
		slog.New(h).Info(msg, args...)
	}
}

// levelSignals changes the log level while running, until ctx ends: SIGUSR1 to debug, SIGUSR2
// back to the configured level. The change itself is always logged.
func levelSignals(ctx context.Context, c *logControl) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-ch:
			if sig == syscall.SIGUSR1 {
				c.lv.Set(slog.LevelDebug)
			} else {
				c.lv.Set(slog.Level(c.base.Load()))
			}
			c.announce("log level changed", "level", c.lv.Level().String())
		}
	}
}

// switchRoot holds the handler of the format in force; switchHandlers read it on every record.
type switchRoot struct{ cur atomic.Pointer[slog.Handler] }

// switchHandler is a slog.Handler whose format can change under it: it applies its attributes
// and groups (chain) to the root's current handler, and rebuilds them when the root changes.
type switchHandler struct {
	root  *switchRoot
	chain []func(slog.Handler) slog.Handler
	built atomic.Pointer[builtHandler]
}

type builtHandler struct {
	from *slog.Handler // the root handler h was built on
	h    slog.Handler
}

func (s *switchHandler) current() slog.Handler {
	base := s.root.cur.Load()
	if b := s.built.Load(); b != nil && b.from == base {
		return b.h
	}
	h := *base
	for _, f := range s.chain {
		h = f(h)
	}
	s.built.Store(&builtHandler{from: base, h: h})
	return h
}

func (s *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.current().Enabled(ctx, l)
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.current().Handle(ctx, r)
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (s *switchHandler) with(f func(slog.Handler) slog.Handler) slog.Handler {
	return &switchHandler{root: s.root, chain: append(slices.Clip(s.chain), f)}
}
