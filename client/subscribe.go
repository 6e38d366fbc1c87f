package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// EventKind says what happened to a key.
type EventKind uint32

// Kinds of events. The values are the protocol's push kinds (PROTOCOL.md).
const (
	EventSet    EventKind = 1 // the key was set; Version is its new version
	EventDelete EventKind = 2 // the key was deleted
	EventExpire EventKind = 3 // the key expired
	// EventResync means events may have been lost (the server's replay window was exceeded, the
	// session had to be reopened, or the subscriber did not keep up): reload what you subscribed
	// to. It has no key.
	EventResync EventKind = 4
)

func (k EventKind) String() string {
	return [...]string{"?", "set", "delete", "expire", "resync"}[min(int(k), 4)]
}

// Event is one change of a subscribed key.
type Event struct {
	Kind    EventKind
	Key     string
	Version uint64 // versions increase with every change: an older one is stale
	Value   []byte // the new value, for sets, if the subscription asked for values
	Seq     uint64 // the session's push sequence number
	// Coalesced says versions of this key were skipped: the server held this subscriber's
	// changes back (it was not acknowledging fast enough) and kept only the newest per key.
	Coalesced bool
	// NoValue says the subscription asked for values but this set came without one: the server
	// held too many values for this subscriber (it was not acknowledging fast enough) or for all
	// of them. Read the key if you need the value.
	NoValue bool
}

// SubOption modifies a subscription.
type SubOption func(*subOptions)

type subOptions struct {
	prefix, values bool
	buffer         int
}

// Prefix subscribes to every key that starts with the given string.
func Prefix() SubOption { return func(o *subOptions) { o.prefix = true } }

// WithValues makes set events carry the new value.
func WithValues() SubOption { return func(o *subOptions) { o.values = true } }

// Buffer sets how many events may wait in the channel; default 1024. A subscriber that falls
// further behind gets an EventResync instead of the events it could not take.
func Buffer(n int) SubOption { return func(o *subOptions) { o.buffer = n } }

// Subscription delivers the events of one key or prefix on C until Unsubscribe or Close.
type Subscription struct {
	C <-chan Event

	c      *Client
	key    string
	opts   subOptions
	ch     chan Event
	mu     sync.Mutex // guards lost, closed, resyncing, held
	lost   bool       // an event was dropped: send a resync when there is room
	closed bool
	// resyncing: the session was lost with its subscriptions and this one is being subscribed
	// again; its events wait in held until the subscribe's reply (and the resync marker that
	// follows it) have been delivered, so that the marker comes before every event of the new
	// session.
	resyncing bool
	held      []Event
}

// Subscribe starts delivering the changes of key (or, with Prefix, of every key starting with
// it) on the subscription's channel. Changes are delivered in order, each once, with no silent
// gap: see PROTOCOL.md for the guarantee.
func (c *Client) Subscribe(ctx context.Context, key string, opts ...SubOption) (*Subscription, error) {
	if c.hook != nil {
		o := slices.Clone(opts)
		return hooked(ctx, c.hook, &Call{Op: "subscribe", Key: key, Addr: c.addr},
			func(ctx context.Context) (*Subscription, error) { return c.subscribe(ctx, key, o) })
	}
	return c.subscribe(ctx, key, opts)
}

func (c *Client) subscribe(ctx context.Context, key string, opts []SubOption) (*Subscription, error) {
	o := subOptions{buffer: 1024}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Subscription{c: c, key: key, opts: o, ch: make(chan Event, o.buffer)}
	s.C = s.ch
	c.subMu.Lock()
	c.subs = append(c.subs, s)
	c.subMu.Unlock()
	if err := c.sendSubscribe(ctx, s, task.OpSubscribe); err != nil {
		c.removeSub(s)
		return nil, err
	}
	return s, nil
}

func (c *Client) sendSubscribe(ctx context.Context, s *Subscription, op task.Op) error {
	h := &wire.Header{Op: op, Key: []byte(s.key)}
	if s.opts.prefix {
		h.Flags |= task.FlagPrefix
	}
	if s.opts.values {
		h.Flags |= task.FlagWithValue
	}
	_, err := c.roundTrip(ctx, h, nil)
	return err
}

// Unsubscribe stops the subscription and closes its channel.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	if p := s.c.hook; p != nil {
		return hookedErr(ctx, p, &Call{Op: "unsubscribe", Key: s.key, Addr: s.c.addr}, s.unsubscribe)
	}
	return s.unsubscribe(ctx)
}

func (s *Subscription) unsubscribe(ctx context.Context) error {
	s.c.removeSub(s)
	if !s.opts.prefix && (s.c.userSubscribed(s.key) || s.c.near.holds(s.key)) {
		return nil // the server keeps one subscription per key and session: still in use
	}
	return s.c.sendSubscribe(ctx, s, task.OpUnsubscribe)
}

// userSubscribed reports whether an application subscription to exactly key exists.
func (c *Client) userSubscribed(key string) bool {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for _, s := range c.subs {
		if !s.opts.prefix && s.key == key {
			return true
		}
	}
	return false
}

func (c *Client) removeSub(s *Subscription) {
	c.subMu.Lock()
	for i, x := range c.subs {
		if x == s {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			break
		}
	}
	c.subMu.Unlock()
	s.close()
}

func (s *Subscription) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (s *Subscription) matches(key string) bool {
	if s.opts.prefix {
		return strings.HasPrefix(key, s.key)
	}
	return key == s.key
}

// deliver hands ev to the subscriber without ever blocking dispatch (the transport's receiver).
func (s *Subscription) deliver(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.resyncing {
		if len(s.held) < cap(s.ch) {
			s.held = append(s.held, ev)
		} // else: the resync marker stands for it (the subscriber re-reads after it)
		return
	}
	s.send(ev)
}

// send puts ev on the channel, or notes it lost. Caller holds s.mu.
func (s *Subscription) send(ev Event) {
	if s.lost {
		select {
		case s.ch <- Event{Kind: EventResync}:
			s.lost = false
		default:
			return
		}
	}
	select {
	case s.ch <- ev:
	default:
		s.lost = true
	}
}

// push handles a push frame from dispatch (it must not block): in sequence it is delivered; a duplicate is
// dropped; a gap makes the client ask the server for what it missed (a resuming hello with the
// last sequence seen), dropping pushes until the sequence is whole again.
func (c *Client) push(h *wire.Header, value []byte) {
	c.subMu.Lock()
	switch {
	case h.Seq <= c.lastSeq:
		c.subMu.Unlock()
		return // already seen (a replay overlapping what arrived)
	case h.Seq > c.lastSeq+1 && EventKind(h.Flags) != EventResync:
		// (a resync jumps the sequence forward: it stands for everything before it)
		repairing := c.repairing
		c.repairing = true
		c.subMu.Unlock()
		if !repairing {
			go c.repair()
		}
		return
	}
	c.lastSeq = h.Seq
	c.unacked += int64(len(value))
	c.scheduleAck()
	subs := append([]*Subscription(nil), c.subs...)
	c.subMu.Unlock()
	ev := Event{Kind: EventKind(h.Flags & task.PushKindMask), Key: string(h.Key), Version: h.Ver, Seq: h.Seq,
		Coalesced: h.Flags&task.PushCoalesced != 0, NoValue: h.Flags&task.PushNoValue != 0}
	if ev.NoValue {
		value = nil // not an empty value: none at all (the near cache drops its entry)
	}
	if c.near != nil {
		c.near.apply(ev.Kind, ev.Key, ev.Version, value)
	}
	for _, s := range subs {
		if ev.Kind == EventResync || s.matches(ev.Key) {
			e := ev
			if len(value) > 0 && s.opts.values {
				e.Value = append([]byte(nil), value...)
			}
			s.deliver(e)
		}
	}
}

// Acknowledgments: the server keeps at most a window of pushes unacknowledged per session (256
// by default) and holds the rest back, so the client confirms what it processed, at least every
// quarter window (c.ackEvery) and at most ackDelay after a push.
const ackDelay = 5 * time.Millisecond

// scheduleAck arranges for the pushes processed so far to be acknowledged. Caller holds subMu.
// It never blocks (it runs in dispatch): the ack is written by c.acks's goroutine.
func (c *Client) scheduleAck() {
	switch {
	case c.lastSeq-c.ackSent >= c.ackEvery.Load(), c.unacked >= c.ackBytes.Load():
		c.acks.kick()
	case !c.ackArmed:
		c.ackArmed = true
		time.AfterFunc(ackDelay, c.acks.kickHere)
	}
}

// ackOnce sends an acknowledgment, if pushes were processed since the last: one frame with the
// last sequence number processed, no reply. It runs in c.acks's goroutine, one at a time, so
// acknowledgments leave in order.
func (c *Client) ackOnce() {
	if c.isClosing() {
		return
	}
	c.subMu.Lock()
	seq := c.lastSeq
	c.ackArmed = false
	if seq <= c.ackSent {
		c.subMu.Unlock()
		return
	}
	c.ackSent, c.unacked = seq, 0
	c.subMu.Unlock()
	s := c.current()
	if s == nil {
		return // the resuming hello carries it
	}
	if err := c.writeFrame(context.Background(), s, &wire.Header{Op: task.OpAck, Seq: seq}, nil); err != nil {
		c.log.Debug("ack not sent", "addr", c.addr, "err", err)
	}
}

// heartbeatReply runs in dispatch when a heartbeat's reply arrives, after every push the
// server sent before it. If the client has processed all of them and the server holds none back,
// the push stream is complete up to the moment the heartbeat was sent: the near cache may
// trust its entries as of then.
func (c *Client) heartbeatReply(sentAt int64, h *wire.Header) {
	c.subMu.Lock()
	complete := !c.repairing && h.Seq <= c.lastSeq && h.Flags&task.FlagBehind == 0
	c.subMu.Unlock()
	if complete && c.near != nil {
		c.near.synced(sentAt)
	}
}

// repair asks the server to replay what followed the last push seen.
func (c *Client) repair() {
	defer func() {
		c.subMu.Lock()
		c.repairing = false
		c.subMu.Unlock()
	}()
	s := c.current()
	if s == nil {
		return // the redial's hello asks for the replay
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.dialTimeout)
	defer cancel()
	if err := c.hello(ctx, s); err != nil {
		c.log.Warn("asking for missed pushes failed", "addr", c.addr, "err", err)
	}
}

// afterHello runs once a hello succeeded on s: if the server opened a new session although this
// client had subscriptions, they were lost with the old one. Each is subscribed again on s,
// retried until it is in place or s is lost too (then the next session's hello starts over),
// and only then, in dispatch, at the subscribe's reply, is its resync marker delivered,
// followed by the events that came meanwhile: the marker precedes every event of the new
// session, and a subscriber is never told to re-read while it is not subscribed.
func (c *Client) afterHello(s *session, resumed bool, seq uint64) {
	c.subMu.Lock()
	if resumed {
		c.subMu.Unlock()
		return
	}
	c.lastSeq, c.ackSent = seq, seq
	subs := append([]*Subscription(nil), c.subs...)
	c.subMu.Unlock()
	if c.near != nil {
		c.near.reset() // the server forgot the near cache's subscriptions with the old session
	}
	for _, sub := range subs {
		sub.startResync()
	}
	if len(subs) == 0 {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, sub := range subs {
			c.resubscribe(s, sub)
		}
	}()
}

// resubscribe subscribes sub again on s until it is in place, s is lost, or the client closes.
func (c *Client) resubscribe(s *session, sub *Subscription) {
	backoff := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.dialTimeout)
		var err error
		if c.failResubscribes.Load() > 0 && c.failResubscribes.Add(-1) >= 0 {
			err = errors.New("test: an injected failure") // as if the subscribe had timed out
		} else {
			err = c.subscribeOn(ctx, s, sub)
		}
		cancel()
		if err == nil {
			return
		}
		if s.lost.Load() || c.closing.Load() || sub.isClosed() {
			return // the next session's hello subscribes it again
		}
		c.log.Warn("re-subscribing failed; retrying", "addr", c.addr, "key", sub.key, "err", err)
		select {
		case <-c.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// subscribeOn sends sub's subscribe on the session s; at its reply (in dispatch) the resync
// marker and the held events are delivered.
func (c *Client) subscribeOn(ctx context.Context, s *session, sub *Subscription) error {
	h := &wire.Header{Op: task.OpSubscribe, Key: []byte(sub.key)}
	if sub.opts.prefix {
		h.Flags |= task.FlagPrefix
	}
	if sub.opts.values {
		h.Flags |= task.FlagWithValue
	}
	onReply := func(r *wire.Header) {
		if r.Code == task.CodeOK {
			sub.finishResync()
		}
	}
	_, err := c.doOnWith(ctx, s, h, nil, onReply)
	return err
}

func (s *Subscription) startResync() {
	s.mu.Lock()
	s.resyncing, s.held = true, s.held[:0]
	s.mu.Unlock()
}

// finishResync delivers the resync marker, then what was held back. In dispatch: never blocks.
func (s *Subscription) finishResync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.resyncing || s.closed {
		return
	}
	s.resyncing = false
	s.send(Event{Kind: EventResync})
	for _, ev := range s.held {
		s.send(ev)
	}
	s.held = s.held[:0]
}

func (s *Subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
