package stages

import "errors"

// Why a daemon is not ready (Daemon.Ready).
var (
	ErrStopping         = errors.New("stages: daemon stopping")
	ErrStoreUnreachable = errors.New("stages: store unreachable or its change feed behind")
)
