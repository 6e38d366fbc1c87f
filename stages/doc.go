// Package stages holds pipecached's pipeline: the event loop every stage runs, the queues that
// connect stages, and (one file each) the four stages that run on them.
//
// The loop (loop_linux.go) is one goroutine locked to an OS thread. Each iteration it:
//
//  1. sleeps in epoll_wait until an fd is ready, a queue is signalled, or the next timer is due;
//  2. refreshes its cached clock (timer.Clock);
//  3. runs the handlers of ready fds, then drains each inbound queue in a bounded batch;
//  4. runs expired timers (timer.Wheel);
//  5. runs the ReadyTimer (timer.Ready): deferred work such as flushing replies.
//
// A queue (queue_linux.go) is a bounded lock-free multi-producer, single-consumer ring of
// *task.Task plus an eventfd. A producer writes the eventfd only when the consumer has announced
// that it is going to sleep, so a busy consumer costs its producers no system call at all.
//
// Ownership: a loop's state (its handlers, timers, ready list, and everything a stage keeps) is
// touched only by the loop's goroutine. Other goroutines talk to a stage only by pushing tasks
// into its queues, or through the few methods documented as safe for concurrent use (Push,
// Close, Stop, Barrier, Stats).
package stages
