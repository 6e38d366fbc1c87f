package stages

import (
	"context"

	"github.com/pipecache/pipecache/task"
)

// What the tests of package stages_test reach inside the stages for. Those tests run the stages
// as package daemon wires them, and daemon imports stages, so they cannot be in package stages.

// What incoming_test.go and procs_test.go define for these tests.
var (
	Dial      = dial
	TestProcs = testProcs
)

// SetStageFinished makes fn be told when each stage has done its part of a stop, until restore.
func SetStageFinished(fn func(stage string)) (restore func()) {
	stageFinished = fn
	return func() { stageFinished = func(string) {} }
}

// SetTestHook makes fn run before each operation CachePrc runs (nil: none).
func (c *CachePrc) SetTestHook(ctx context.Context, fn func(*task.Task)) error {
	return c.loop.Run(ctx, func() { c.testHook = fn })
}

// SetFeedDown says the shared store's change feed is (or is no longer) incomplete.
func (c *CachePrc) SetFeedDown(ctx context.Context, down bool) error {
	return c.loop.Run(ctx, func() { c.feedDown = down })
}

// Cached reads key's cached state on CachePrc's loop: whether it is cached and its expiry
// deadline.
func (c *CachePrc) Cached(ctx context.Context, key string) (expireAt int64, cached bool, err error) {
	err = c.loop.Run(ctx, func() {
		if i := c.tab.lookup([]byte(key)); i != 0 {
			expireAt, cached = c.tab.slot(i).expireAt, true
		}
	})
	return expireAt, cached, err
}

// SetCommitted makes fn run on the committer's goroutine after each group commit, until
// restore.
func SetCommitted(fn func()) (restore func()) {
	committedOn = fn
	return func() { committedOn = func() {} }
}

// RaceEnabled says whether the race detector is on (it makes sync.Pool drop items at random and
// allocates in instrumented code).
const RaceEnabled = raceEnabled
