package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pipecache/pipecache/nameservice"
)

// OpenStore opens the store cfg names, the one function that opens every kind: cfg.OwnStore
// if set; a shared store if cfg.Store is an etcd:// URL, waited for up to cfg.StoreWait (or
// until ctx ends) to answer; otherwise the embedded store in the directory cfg.Store (default
// "data"), with the durability cfg.Fsync.
func OpenStore(ctx context.Context, cfg Config) (nameservice.Store, error) {
	switch {
	case cfg.OwnStore != nil:
		return cfg.OwnStore, nil
	case strings.HasPrefix(cfg.Store, "etcd://"):
		return openEtcd(ctx, cfg)
	case cfg.Store == "":
		cfg.Store = "data"
	}
	// An embedded directory of an earlier version (bbolt) is migrated here, and logged.
	st, err := nameservice.OpenWith(cfg.Store, nameservice.Options{Fsync: cfg.Fsync, Logger: cfg.Logger})
	if err != nil {
		return nil, err // not st: a nil *Pebble in an interface is not a nil Store
	}
	return st, nil
}

// openEtcd connects to etcd and waits for it to answer.
func openEtcd(ctx context.Context, cfg Config) (nameservice.Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// etcd's own deadline comes before CachePrc's, so that a request that cannot reach etcd
	// is answered "unavailable" (the store is down) rather than "timeout".
	st, err := nameservice.OpenEtcd(cfg.Store, cfg.Cache.StoreTimeout*3/4, log)
	if err != nil {
		return nil, err
	}
	if err := waitForStore(ctx, st, cfg.StoreWait, log); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// waitForStore waits until the store answers (etcd may start after its nodes), for up to
// wait, or until ctx ends.
func waitForStore(ctx context.Context, st nameservice.Store, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	backoff := 100 * time.Millisecond
	for {
		_, err := st.MaxVersion()
		if err == nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		log.Warn("store not answering; waiting for it", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for the store: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
