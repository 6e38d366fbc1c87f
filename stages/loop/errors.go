package loop

import "errors"

// Errors returned by queues and loops.
var (
	ErrQueueFull    = errors.New("loop: queue full")           // back-pressure: the caller must reject or retry
	ErrQueueClosed  = errors.New("loop: queue closed")         // the consumer is stopping or stopped
	ErrLoopStopped  = errors.New("loop: loop already stopped") // Stop or Start after a stop
	ErrLoopStarted  = errors.New("loop: loop already started")
	ErrQueueInUse   = errors.New("loop: queue already has a consumer")
	ErrUnknownFD    = errors.New("loop: fd not registered")
	ErrLoopFailed   = errors.New("loop: loop failed")
	ErrBadQueueSize = errors.New("loop: queue capacity must be a power of two >= 2")
)
