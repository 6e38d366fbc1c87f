package stages

import (
	"fmt"
	"slices"

	"github.com/pipecache/pipecache/task"
)

// Reverse notification, SessionMgr's side: subscriptions, per-session sequence numbers, a
// bounded replay buffer per session, and the fan-out of CachePrc's change events to the
// subscribed sessions' conversations (through Incoming).
//
// Delivery: every push a session is sent carries the next sequence number of that session and
// is kept in its replay buffer (the last ReplayWindow pushes). A client that sees a gap in the
// sequence, or reconnects, says hello with its resume token and the last sequence it saw; the
// server then sends exactly the pushes after it, in order, or, if they have left the window, one
// push of kind resync telling the client to reload what it subscribed to. Every push carries the
// key's version, so a duplicate or a stale push is recognisable.
//
// Flow control: the client acknowledges the pushes it processed (an ack frame, or the seq of a
// heartbeat). At most PushWindow pushes are out unacknowledged; the window is never wider than
// the replay buffer, so whatever a client has not confirmed can always be replayed. While the
// window is full, changes wait in a backlog holding one entry per key: a newer change of a key
// replaces the waiting one (the push then says "coalesced": versions were skipped). If more than
// PushBacklog keys are waiting, the backlog is dropped and the session gets one resync when the
// window opens. So a slow subscriber costs at most window + backlog entries of memory and is
// never waited for: the fan-out to everyone else goes on.
//
// Values: a subscription with values gets each set's value in its push while the session holds
// less than PushBytes of values in pushes not yet acknowledged and changes waiting, and all
// sessions together less than PushMemory; beyond, the push goes without its value, flagged
// PushNoValue (read the key). So a subscriber that stops reading costs at most PushBytes of values,
// however large they are, and all of them at most PushMemory.

// change is one event for one session, kept for replay.
type change struct {
	seq     uint64
	key     string
	version uint64
	kind    uint32 // PushSet etc., with PushCoalesced if versions were skipped
	value   []byte // only for sets to a with-value subscription
}

// notifyState is a session's subscriptions and its push stream.
type notifyState struct {
	exact    map[string]uint32 // key -> subscribe flags
	prefixes map[string]uint32 // prefix -> subscribe flags
	seq      uint64            // the last sequence number used
	ring     []change          // the last ReplayWindow pushes, oldest first (a circular buffer)
	start    int               // index of the oldest in ring

	acked     uint64         // the highest sequence number the client confirmed
	released  uint64         // pushes up to this one no longer hold their values (acknowledged)
	bytes     int64          // values held: in pushes not yet acknowledged, and in the backlog
	backlog   []change       // changes waiting for room in the window (no seq yet), oldest first
	head      int            // index of the oldest waiting change in backlog
	waiting   map[string]int // key -> its index in backlog, for coalescing
	resyncDue bool           // the backlog overflowed: send a resync when the window opens
}

// behind reports whether changes are waiting to be pushed.
func (n *notifyState) behind() bool { return n.resyncDue || n.head < len(n.backlog) }

// record keeps c (whose seq is n.seq) for replay, and returns the value of the push it pushed
// out of the ring, if that still held one.
func (n *notifyState) record(c change, window int) (dropped []byte) {
	if len(n.ring) < window {
		n.ring = append(n.ring, c)
		return nil
	}
	dropped = n.ring[n.start].value
	n.ring[n.start] = c
	n.start = (n.start + 1) % len(n.ring)
	return dropped
}

// at returns the kept push with sequence number seq, or nil if the ring no longer holds it.
func (n *notifyState) at(seq uint64) *change {
	oldest := n.seq - uint64(len(n.ring)) + 1
	if seq < oldest || seq > n.seq || len(n.ring) == 0 {
		return nil
	}
	return &n.ring[(n.start+int(seq-oldest))%len(n.ring)]
}

// since returns the pushes after seq, oldest first, and whether the window still holds them all.
func (n *notifyState) since(seq uint64) ([]change, bool) {
	if seq >= n.seq {
		return nil, true
	}
	var out []change
	for i := range n.ring {
		c := n.ring[(n.start+i)%len(n.ring)]
		if c.seq > seq {
			out = append(out, c)
		}
	}
	return out, len(out) == int(n.seq-seq)
}

// subscribe handles subscribe and unsubscribe for session s.
func (m *SessionMgr) subscribe(s *session, t *task.Task) {
	if s.notify == nil {
		s.notify = &notifyState{exact: map[string]uint32{}, prefixes: map[string]uint32{}, waiting: map[string]int{}}
	}
	n, key := s.notify, string(t.Key)
	set := n.exact
	if t.Flags&task.FlagPrefix != 0 {
		set = n.prefixes
	}
	before := len(n.exact) + len(n.prefixes)
	if t.Op == task.OpSubscribe {
		if _, again := set[key]; !again && before >= m.cfg.MaxSubscriptions {
			m.fail(t, task.CodeLimit, fmt.Errorf("subscriptions per session over the limit of %d", m.cfg.MaxSubscriptions))
			return
		}
		set[key] = t.Flags
		m.watch(key, t.Flags&task.FlagPrefix != 0, s)
	} else {
		delete(set, key)
		m.unwatch(key, t.Flags&task.FlagPrefix != 0, s)
	}
	m.subscriptions.Add(int64(len(n.exact) + len(n.prefixes) - before))
	t.Seq = n.seq // the client learns where the stream stands
	m.reply(t)
}

// watch and unwatch maintain the indexes used by the fan-out.
// The prefix index is looked up by every prefix of a changed key that has the length of some
// subscribed prefix (prefixLens): the cost of matching grows with the number of distinct prefix
// lengths (at most the longest key), never with the number of prefixes subscribed.
func (m *SessionMgr) watch(key string, prefix bool, s *session) {
	idx := m.exactSubs
	if prefix {
		idx = m.prefixSubs
	}
	if idx[key] == nil {
		idx[key] = map[*session]struct{}{}
		if prefix {
			m.prefixLens.add(len(key))
		}
	}
	idx[key][s] = struct{}{}
}

func (m *SessionMgr) unwatch(key string, prefix bool, s *session) {
	idx := m.exactSubs
	if prefix {
		idx = m.prefixSubs
	}
	subs, ok := idx[key]
	if !ok {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(idx, key)
		if prefix {
			m.prefixLens.remove(len(key))
		}
	}
}

// lengths is a counted set of prefix lengths, kept sorted.
type lengths struct {
	sorted []int
	count  map[int]int
}

func (l *lengths) add(n int) {
	if l.count == nil {
		l.count = map[int]int{}
	}
	if l.count[n]++; l.count[n] == 1 {
		i, _ := slices.BinarySearch(l.sorted, n)
		l.sorted = slices.Insert(l.sorted, i, n)
	}
}

func (l *lengths) remove(n int) {
	if l.count[n]--; l.count[n] == 0 {
		delete(l.count, n)
		if i, ok := slices.BinarySearch(l.sorted, n); ok {
			l.sorted = slices.Delete(l.sorted, i, i+1)
		}
	}
}

// dropSubscriptions forgets everything s subscribed to (the session ended).
func (m *SessionMgr) dropSubscriptions(s *session) {
	if s.notify == nil {
		return
	}
	for k := range s.notify.exact {
		m.unwatch(k, false, s)
	}
	for k := range s.notify.prefixes {
		m.unwatch(k, true, s)
	}
	m.subscriptions.Add(-int64(len(s.notify.exact) + len(s.notify.prefixes)))
	m.releaseBytes(s.notify.bytes)
	s.notify = nil
}

// fanOut sends a change event from CachePrc to every session subscribed to its key.
func (m *SessionMgr) fanOut(ev *task.Task) {
	defer task.Put(ev)
	m.events.give(len(ev.Value))                      // taken by CachePrc when it made the event
	if ev.Kind&task.PushKindMask == task.PushResync { // the cache lost track: every subscriber reloads
		for _, s := range m.byID {
			if s.notify != nil {
				m.push(s, ev, 0)
			}
		}
		return
	}
	key := string(ev.Key)
	for s := range m.exactSubs[key] {
		m.push(s, ev, s.notify.exact[key])
	}
	for _, n := range m.prefixLens.sorted {
		if n > len(ev.Key) {
			break
		}
		p := ev.Key[:n]
		for s := range m.prefixSubs[string(p)] {
			if _, exact := s.notify.exact[key]; exact {
				continue // one push per session and change, even if subscribed twice
			}
			m.push(s, ev, s.notify.prefixes[string(p)])
		}
	}
}

func (m *SessionMgr) push(s *session, ev *task.Task, subFlags uint32) {
	n := s.notify
	c := change{key: string(ev.Key), version: ev.Version, kind: ev.Kind}
	if subFlags&task.FlagWithValue != 0 && ev.Kind&task.PushKindMask == task.PushSet && ev.Kind&task.PushNoValue == 0 {
		if m.holdBytes(n, len(ev.Value)) {
			c.value = append([]byte(nil), ev.Value...)
		} else {
			c.kind |= task.PushNoValue
			m.valuesDropped.Add(1)
		}
	}
	if subFlags&task.FlagWithValue == 0 {
		c.kind &^= task.PushNoValue // no value was asked for: none is missing
	}
	switch {
	case n.resyncDue:
		m.coalesced.Add(1) // the resync waiting to go out stands for this change too
	case !n.behind() && n.seq-n.acked < uint64(m.cfg.PushWindow):
		m.emit(s, c)
	default:
		m.hold(s, c)
	}
}

// hold puts c in s's backlog, replacing a waiting change of the same key.
func (m *SessionMgr) hold(s *session, c change) {
	n := s.notify
	if i, ok := n.waiting[c.key]; ok {
		c.kind |= task.PushCoalesced
		m.releaseValue(n, n.backlog[i].value)
		n.backlog[i] = c
		m.coalesced.Add(1)
		return
	}
	if len(n.backlog)-n.head >= m.cfg.PushBacklog {
		m.log.Warn("subscriber too slow: dropping its backlog, it will get a resync",
			"session", s.id, "name", s.name, "addr", s.addr, "backlog", len(n.backlog)-n.head, "unacked", n.seq-n.acked)
		m.coalesced.Add(int64(len(n.backlog)-n.head) + 1)
		for _, w := range n.backlog[n.head:] {
			m.releaseValue(n, w.value)
		}
		m.releaseValue(n, c.value)
		clear(n.waiting)
		n.backlog, n.head, n.resyncDue = nil, 0, true
		return
	}
	n.waiting[c.key] = len(n.backlog)
	n.backlog = append(n.backlog, c)
	m.held.Add(1)
}

// ack records that s's client processed every push up to seq, and sends what the window now
// has room for.
func (m *SessionMgr) ack(s *session, seq uint64) {
	n := s.notify
	if n == nil {
		return
	}
	if seq = min(seq, n.seq); seq > n.acked {
		n.acked = seq
	}
	for ; n.released < n.acked; n.released++ { // acknowledged pushes need their values no more
		if c := n.at(n.released + 1); c != nil && c.value != nil {
			m.releaseValue(n, c.value)
			c.value = nil
		}
	}
	for n.seq-n.acked < uint64(m.cfg.PushWindow) {
		if n.resyncDue {
			n.resyncDue = false
			m.resyncs.Add(1)
			m.emit(s, change{kind: task.PushResync})
			continue
		}
		if n.head == len(n.backlog) {
			break
		}
		c := n.backlog[n.head]
		n.backlog[n.head] = change{}
		n.head++
		delete(n.waiting, c.key)
		m.emit(s, c)
	}
	if n.head == len(n.backlog) {
		n.backlog, n.head = n.backlog[:0], 0
		if cap(n.backlog) > m.cfg.PushBacklog/4 {
			n.backlog = nil // a burst is over: give its memory back
		}
	}
}

// emit gives c the session's next sequence number, keeps it for replay and sends it.
func (m *SessionMgr) emit(s *session, c change) {
	n := s.notify
	n.seq++
	c.seq = n.seq
	m.releaseValue(n, n.record(c, m.cfg.ReplayWindow))
	m.send(s, c)
}

// holdBytes reports whether s's push state may hold a value of size bytes more (its own budget
// and everyone's), and counts them if so.
func (m *SessionMgr) holdBytes(n *notifyState, size int) bool {
	if n.bytes+int64(size) > m.cfg.PushBytes || m.pushBytes+int64(size) > m.cfg.PushMemory {
		return false
	}
	n.bytes += int64(size)
	m.pushBytes += int64(size)
	m.pushBytesGauge.Store(m.pushBytes)
	return true
}

func (m *SessionMgr) releaseValue(n *notifyState, value []byte) {
	if value != nil {
		n.bytes -= int64(len(value))
		m.releaseBytes(int64(len(value)))
	}
}

func (m *SessionMgr) releaseBytes(size int64) {
	m.pushBytes -= size
	m.pushBytesGauge.Store(m.pushBytes)
}

// send hands one push to Incoming for s's conversation. If Incoming cannot take it, the push is
// still in the replay buffer: the client sees the gap and asks for it.
func (m *SessionMgr) send(s *session, c change) {
	t := task.Get()
	t.Op, t.Conn, t.Seq, t.Version, t.Kind = task.OpPush, s.conn, c.seq, c.version, c.kind
	t.Key = append(t.Key, c.key...)
	t.Value = append(t.Value, c.value...)
	if m.toIncoming.Len() > 0 || m.replies.Push(t) != nil {
		m.pushesDropped.Add(1) // in the replay buffer still: the client asks for it
		task.Put(t)
	}
}

// replay sends s the pushes after seq (the last one its client processed), or a resync if they
// have left the window, then whatever the window has room for.
func (m *SessionMgr) replay(s *session, seq uint64) {
	n := s.notify
	if n == nil {
		return
	}
	missed, ok := n.since(seq)
	if !ok {
		// Only a client that lies about what it saw gets here: the window never holds more
		// unacknowledged pushes than the replay buffer.
		n.acked = n.seq
		m.resyncs.Add(1)
		m.emit(s, change{kind: task.PushResync})
		return
	}
	for _, c := range missed {
		m.send(s, c)
	}
	m.ack(s, seq)
}
