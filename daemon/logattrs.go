package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
)

// Attributes of the daemon's log lines in the units an operator reads.

// storeAttr names the store the daemon serves from: the embedded store's directory, absolute
// (data_dir), or the shared store given in its place (store: its URL, or "own" for
// Config.OwnStore).
func storeAttr(cfg Config) slog.Attr {
	switch storeKind(cfg) {
	case "own":
		return slog.String("store", "own")
	case "etcd":
		return slog.String("store", cfg.Store)
	}
	dir := cfg.Store
	if dir == "" {
		dir = "data" // OpenStore's default
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return slog.String("data_dir", dir)
}

// storeKind names the store the daemon runs on, as the info op says it: pebble (the embedded
// store), etcd, or own (Config.OwnStore).
func storeKind(cfg Config) string {
	switch {
	case cfg.OwnStore != nil:
		return "own"
	case strings.HasPrefix(cfg.Store, "etcd://"):
		return "etcd"
	}
	return "pebble"
}

// mib writes a size in bytes in MiB ("256 MiB", "1.5 MiB"), or in bytes under 1 MiB.
func mib(bytes int64) string {
	switch {
	case bytes < 1<<20:
		return fmt.Sprintf("%d B", bytes)
	case bytes%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", bytes>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}
