package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
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

// newLogger makes the daemon's logger from -log-level and -log-format. The level can change at
// run time (levelSignals).
func newLogger(cfg *config, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("-log-level: %w", err)
	}
	h, err := newHandler(cfg.logFormat, w, lv)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(h), lv, nil
}

// levelSignals changes the log level while running, until ctx ends: SIGUSR1 to debug, SIGUSR2
// back to the level the daemon was started with. The change itself is always logged (at info,
// whatever the level), in the daemon's format.
func levelSignals(ctx context.Context, lv *slog.LevelVar, format string, w io.Writer) {
	start := lv.Level()
	h, err := newHandler(format, w, nil)
	if err != nil {
		return
	}
	log := slog.New(h)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-ch:
			if sig == syscall.SIGUSR1 {
				lv.Set(slog.LevelDebug)
			} else {
				lv.Set(start)
			}
			log.Info("log level changed", "level", lv.Level().String())
		}
	}
}
