package stages

import "github.com/pipecache/pipecache/stages/loop"

// hostStage hosts a stage on l, the loop the daemon's mapping gives it (daemon/pipeline.go), or,
// if l is nil, on a loop of its own made from own (a stage on its own: tests, tools). Either
// way the stage's methods run on that loop's goroutine, and the stage reaches the others only
// through their queues.
func hostStage(l *loop.Loop, own loop.Config, sc loop.StageConfig) (*loop.Stage, error) {
	if l == nil {
		var err error
		if l, err = loop.New(own); err != nil {
			return nil, err
		}
	}
	return l.Host(sc)
}
