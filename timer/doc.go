// Package timer gives a stage loop its sense of time: a cached clock read once per wake-up, a
// ReadyTimer whose callbacks run at the end of the current loop iteration, and a hierarchical
// timing wheel for time-outs that stays O(1) per schedule and cancel with millions of entries.
//
// Nothing here is safe for concurrent use except Clock's readers: each value is owned by the one
// stage loop that drives it (see package stages), and only that loop's goroutine may call its
// methods.
package timer
