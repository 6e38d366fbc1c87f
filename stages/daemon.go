package stages

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
)

// DaemonConfig is everything pipecached is started with.
type DaemonConfig struct {
	Incoming IncomingConfig
	Logger   *slog.Logger
}

// Daemon is a running pipecached: the stages wired together.
//
// So far it runs the Incoming stage (ping and echo); SessionMgr, CachePrc and Outgoing join it
// with issue #4.
type Daemon struct {
	log      *slog.Logger
	incoming *Incoming
}

// StartDaemon binds the listener and starts every stage.
func StartDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Incoming.Logger = cfg.Logger
	in, err := NewIncoming(cfg.Incoming)
	if err != nil {
		return nil, fmt.Errorf("pipecached: %w", err)
	}
	if err := in.Start(); err != nil {
		return nil, fmt.Errorf("pipecached: %w", err)
	}
	d := &Daemon{log: cfg.Logger, incoming: in}
	d.log.Info("pipecached listening", "addr", in.Addr().String())
	return d, nil
}

// Addr returns the address clients dial.
func (d *Daemon) Addr() netip.AddrPort { return d.incoming.Addr() }

// Stop finishes in-flight work stage by stage and closes the listener.
func (d *Daemon) Stop(ctx context.Context) error {
	err := StopAll(ctx, d.incoming.Loop())
	st := d.incoming.Stats()
	d.log.Info("pipecached stopped", "requests", st.Requests, "conversations", st.Transport.Opened, "err", err)
	return err
}
