package stages

import "errors"

// Errors returned by queues and loops.
var (
	ErrQueueFull    = errors.New("stages: queue full")           // back-pressure: the caller must reject or retry
	ErrQueueClosed  = errors.New("stages: queue closed")         // the consumer is stopping or stopped
	ErrLoopStopped  = errors.New("stages: loop already stopped") // Stop or Start after a stop
	ErrLoopStarted  = errors.New("stages: loop already started")
	ErrQueueInUse   = errors.New("stages: queue already has a consumer")
	ErrUnknownFD    = errors.New("stages: fd not registered")
	ErrLoopFailed   = errors.New("stages: loop failed")
	ErrBadQueueSize = errors.New("stages: queue capacity must be a power of two >= 2")
)

// Why a daemon is not ready (Daemon.Ready).
var (
	ErrStopping         = errors.New("stages: daemon stopping")
	ErrStoreUnreachable = errors.New("stages: store unreachable or its change feed behind")
)
