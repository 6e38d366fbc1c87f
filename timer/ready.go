package timer

// ReadyEntry is a target of the ReadyTimer. Embed one in the object that wants a deferred
// callback (for example a session that has replies to flush) and set Fn once. Adding an entry
// that is already queued does nothing, so a session asked to flush ten times in one iteration is
// flushed once.
type ReadyEntry struct {
	Fn     func()
	queued bool
}

// Queued reports whether e is waiting for the end of the iteration.
func (e *ReadyEntry) Queued() bool { return e.queued }

// Ready is the ReadyTimer: zero-delay callbacks that run at the end of the current loop
// iteration, after the iteration's fds, queue drains and expired timers. It is the loop's
// equivalent of the kernel raising a softirq: code that wants to send registers its target here
// instead of sending in many places.
//
// Entries added while Run is running are kept for the next iteration (Pending reports them, so
// the loop then polls without sleeping); an entry that re-adds itself cannot starve the loop.
type Ready struct {
	cur, next []*ReadyEntry
	funcs     []func()
	running   bool
}

// Add queues e to run at the end of this iteration, once however often it is added.
func (r *Ready) Add(e *ReadyEntry) {
	if e.queued {
		return
	}
	e.queued = true
	r.next = append(r.next, e)
}

// Post queues fn to run at the end of this iteration. Unlike Add, every Post runs.
func (r *Ready) Post(fn func()) {
	r.funcs = append(r.funcs, fn)
}

// Pending reports whether anything is queued.
func (r *Ready) Pending() bool { return len(r.next) > 0 || len(r.funcs) > 0 }

// Run runs what was queued before the call, in the order it was queued (entries, then posted
// funcs). It returns the number of callbacks run.
func (r *Ready) Run() int {
	if r.running {
		panic("timer: Ready.Run called from a ready callback")
	}
	r.running = true
	defer func() { r.running = false }()

	r.cur, r.next = r.next, r.cur[:0]
	n := len(r.cur)
	for i, e := range r.cur {
		r.cur[i] = nil
		e.queued = false
		e.Fn()
	}
	funcs := r.funcs
	r.funcs = nil
	for _, fn := range funcs {
		fn()
	}
	if r.funcs == nil { // nothing posted during the run: keep the backing array
		r.funcs = funcs[:0]
		clear(funcs)
	}
	return n + len(funcs)
}
