//go:build linux

package kcpnet

// Sending: a goroutine that queued a frame (Conn.Send) flushes it itself, without waking the
// loop, unless another goroutine is already flushing; then that one takes the frame along
// (send combining). The flusher holds Engine.sendMu, empties the dirty list, flushes each
// conversation into its socket's sender batch and sends each batch with one sendmmsg, so the
// requests of callers that send at the same time leave together.

// maxCombineRounds bounds how many times one sender empties the dirty list for others before
// handing the rest to the loop, so that no caller is kept sending for everyone under load.
const maxCombineRounds = 4

// markDirty adds c to the conversations waiting to be flushed (c.queued was false).
func (e *Engine) markDirty(c *Conn) {
	e.dirtyMu.Lock()
	e.dirty = append(e.dirty, c)
	e.ndirty.Add(1)
	e.dirtyMu.Unlock()
}

// Flush sends what Conn.Queue queued, on every conversation of the engine (if another
// goroutine is sending at the moment, that one takes it along).
func (e *Engine) Flush() { e.kick() }

// kick flushes the dirty conversations if no one else is doing it. A flusher checks for more
// after it lets go of sendMu, so a conversation queued meanwhile is never left behind.
func (e *Engine) kick() {
	for round := 0; e.ndirty.Load() > 0; round++ {
		if round == maxCombineRounds {
			e.handoff.Store(true)
			e.wake()
			return
		}
		if !e.sendMu.TryLock() {
			return // the holder will see our conversation
		}
		e.flushDirty(round)
		e.sendMu.Unlock()
	}
}

// flushDirty flushes every conversation on the dirty list and sends the batches. Caller holds
// sendMu.
func (e *Engine) flushDirty(round int) {
	e.dirtyMu.Lock()
	list := e.dirty
	e.dirty = e.spare[:0]
	e.ndirty.Store(0)
	e.dirtyMu.Unlock()
	if round > 0 || len(list) > 1 {
		e.stats.combined.Add(uint64(len(list) - 1 + min(round, 1)))
	}
	t := now()
	for i, c := range list {
		if r, ok := c.flushOut(t); ok {
			e.arms = append(e.arms, r)
		}
		list[i] = nil
	}
	e.spare = list[:0]
	for _, s := range *e.socks.Load() {
		if s.out.pending() && !s.closed {
			s.out.flush()
		}
	}
	if len(e.arms) > 0 {
		e.postArm(e.arms)
		clear(e.arms)
		e.arms = e.arms[:0]
	}
}
