package stages

// stageFinished is told, in tests, when each stage has done its part of a stop: the daemon
// stops the stages in pipeline order (package daemon, Daemon.Stop), each closing the queues it
// feeds once it has finished.
var stageFinished = func(stage string) {}

// committedOn is called, in tests, on the committer's goroutine after each group commit.
var committedOn = func() {}
