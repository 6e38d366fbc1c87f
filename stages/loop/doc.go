// Package loop is the event loop every pipeline stage runs and the queues that connect stages.
// It imports nothing of pipecache's but task and timer, so what a stage may touch of another is
// enforced by visibility: a stage holds its own Loop and the Queues it consumes, and reaches the
// others only through Queue.Push.
//
// A Loop (loop_linux.go, run_linux.go) is one goroutine locked to an OS thread. It hosts one or
// more stages (stage.go): each with its own queues and hooks, sharing the loop's clock, wheel and
// ReadyTimer. Each iteration it:
//
//  1. sleeps in epoll_wait until an fd is ready, a queue is signalled, or the next timer is due;
//  2. refreshes its cached clock (timer.Clock);
//  3. runs the handlers of ready fds, then drains each inbound queue in a bounded batch, in the
//     order the stages were hosted (a hand-off to a stage later in that order is handled in the
//     same iteration, without an eventfd write);
//  4. runs expired timers (timer.Wheel);
//  5. runs the ReadyTimer (timer.Ready): deferred work such as flushing replies.
//
// A Queue (queue_linux.go) is a bounded lock-free multi-producer, single-consumer ring of
// *task.Task plus an eventfd. A producer writes the eventfd only when the consumer has announced
// that it is going to sleep, so a busy consumer costs its producers no system call at all. A
// full queue is an error the producer handles (Outbox keeps tasks in order and retries them).
//
// Ownership: a loop's state (its handlers, timers, ready list, and everything its stages keep) is
// touched only by the loop's goroutine. Other goroutines reach it only through the methods
// documented as safe for concurrent use: Queue.Push and Close; Loop.Start, Stop, Barrier, Run,
// Done, Err and Stats; Stage.Start and Stats.
//
// A stage that has finished hands its last tasks on without waiting (Outbox.Finish,
// Loop.CloseQueue): their consumer may be another stage of the same loop, which only this
// goroutine can run. The loop does not end until they are delivered.
package loop
