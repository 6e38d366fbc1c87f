// Package stages holds pipecached's pipeline: the four stages, one file each.
//
//	incoming.go     Incoming: the UDP socket and every KCP conversation (package transport)
//	sessionmgr.go   SessionMgr: sessions, leases; notify.go: subscriptions and pushes
//	cacheprc*.go    CachePrc: the cached data (cache_table.go) and every operation on it
//	outgoing.go     Outgoing: the store (package nameservice), its load workers; committer.go: the
//	                committer goroutine, which CachePrc feeds directly (CachePrc -> committer -> CachePrc)
//
// Package daemon wires them together (daemon/pipeline.go), starts them and stops them in
// pipeline order (finish.go says when each has done its part).
//
// Each stage is hosted by a loop.Loop (package stages/loop), alone or beside other stages: the
// daemon's mapping says which (daemon/pipeline.go); a stage made without one gets a loop of its
// own (host.go). Every method of a stage runs on that loop's goroutine unless its comment says
// otherwise, and touches only that stage's state, whatever else the loop hosts.
// Stages hand each other *task.Task pointers through loop.Queues; a task belongs to the stage
// holding it. The few goroutines that are not loops (Outgoing's load workers, committer, sweeper
// and the change feed) touch nothing of a stage's: they talk to it through its queues, and the
// committer through the CommitPort, whose one slot holds the batch CachePrc offers it.
package stages
