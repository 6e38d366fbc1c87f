// Package task defines the unit of work that moves through pipecached's pipeline.
//
// A *Task is handed from stage to stage by pointer (Incoming → CachePrc → Incoming, or through
// SessionMgr and Outgoing); exactly one stage owns it at a time, and ownership moves with the
// pointer. Tasks come from a pool: Get one, fill it, pass it on, and the stage that finishes with
// it calls Put. The steady state therefore allocates nothing per request.
//
// This package holds data only. It may be imported by every stage and by the transport; it
// imports nothing of pipecache's own.
package task
