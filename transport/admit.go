package transport

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/timer"
	"github.com/pipecache/pipecache/transport/dgram"
	"github.com/pipecache/pipecache/transport/wire"
)

// Pending conversations: what a stranger's datagrams can make the server do before a hello.
//
// UDP needs no handshake, so any datagram that looks like the start of a KCP conversation makes
// the server keep state for it. Until the stage above establishes the conversation (a
// successful hello), it is pending, and everything it can cost is bounded:
//
//   - Admission: a conversation begins only with a datagram holding a KCP push of sequence
//     number 0 (anything else for an unknown conversation is counted and dropped). New
//     conversations are admitted at PendingRate per second overall and SourceRate per source
//     address (IPv4 address, IPv6 /64), at most PendingPerSource pending per source, and at most
//     MaxPending in all: when that is reached, the oldest pending conversation is evicted, so
//     that a flood cannot lock others out (a legitimate hello completes in one round trip; a
//     flood's conversations never do). Each rate is a token bucket with a burst of one second's
//     worth, full at first. A conversation whose hello Config.Vouch vouches for is admitted in a
//     lane of its own (see lane).
//   - Memory: a pending conversation gets a receive window of pendingWindow segments and may
//     send frames of at most PendingFrame bytes, so it holds at most PendingConnBytes; all of
//     them together at most PendingMemory.
//   - Time: PendingTTL from its first datagram, however chatty it is.
//   - Traffic: until the peer has acknowledged something the server sent it (validate.go),
//     pending or established, the server sends it at most Amplification times the bytes it
//     received from it, KCP ACKs, the hello's reply and every resend included (QUIC's
//     anti-amplification limit, RFC 9000 section 8.1), so a spoofed source address cannot turn
//     the server into an amplifier. Output over the limit is dropped; KCP resends it once the
//     peer has sent more. A conversation whose peer acknowledged nothing is closed PendingTTL
//     after it began, a successful hello notwithstanding.

const (
	// PendingFrame is the largest frame a pending conversation may send (a hello fits).
	PendingFrame = 8 << 10
	// Amplification bounds what is sent to a conversation whose peer is not validated: at most
	// this many times the bytes it sent.
	Amplification = 3
	// PendingConnBytes bounds what one pending conversation holds: kcp-go's KCP object with its
	// initial rings and flush buffer (about 20 KB), pendingWindow out-of-order segments in
	// pooled 1500-byte buffers, the frame splitter (PendingFrame) and the Conn itself.
	PendingConnBytes = 40 << 10

	pendingWindow = 8       // a pending conversation's KCP receive window, in segments
	maxSources    = 1 << 16 // source addresses tracked at once; beyond, new sources are refused
	sourceSweep   = time.Second
)

// A lane is a share of admission. A conversation whose first datagram holds a hello that
// Config.Vouch vouches for (a valid token, or a resume token this server issued) is admitted
// in the vouched lane, every other in the anonymous one. Each lane has its own rates and
// per-source caps, of the same sizes, and an anonymous conversation never evicts a vouched one:
// so a flood of anonymous conversations, even from a client's own address (behind a NAT), does
// not lock out a client that can say who it is.
type lane int

const (
	anonymous lane = iota
	vouched
	lanes
)

// source is one address's share of admission.
type source struct {
	addr    netip.Addr
	pending [lanes]int
	bucket  [lanes]tokenBucket
}

// pendList is a lane's pending conversations, oldest first.
type pendList struct{ oldest, newest *Conn }

// admission is the Server's bookkeeping of pending conversations. Loop goroutine only.
type admission struct {
	srv      *Server
	pending  int // in both lanes
	bucket   [lanes]tokenBucket
	sources  map[netip.Addr]*source
	list     [lanes]pendList
	sweep    timer.Timer
	resets   tokenBucket
	resetBuf [128]byte
}

func (a *admission) init(s *Server) {
	a.srv = s
	a.sources = make(map[netip.Addr]*source)
	a.sweep.Fn = a.forgetIdleSources
}

func (a *admission) attach(l Loop) {
	now := l.Clock().Nanos()
	for i := range a.bucket {
		a.bucket[i] = newBucket(a.srv.cfg.PendingRate, now)
	}
	a.resets = newBucket(resetRate, now)
	l.Wheel().Schedule(&a.sweep, now+int64(sourceSweep))
}

// admit returns a new pending conversation for the datagram data from key, or nil (counted)
// if it does not begin a conversation or may not be admitted now.
func (a *admission) admit(key convKey, data []byte) *Conn {
	s := a.srv
	if !startsConversation(data) {
		s.stats.notStart.Add(1)
		a.reset(key, data)
		return nil
	}
	now := s.loop.Clock().Nanos()
	if s.shedNew(now) { // the server is behind: new conversations wait (overload.go)
		return nil
	}
	src := a.sourceOf(key.addr.Addr(), now)
	ln := anonymous
	if s.cfg.Vouch != nil {
		if f := firstFrame(data); f != nil && s.cfg.Vouch(f) {
			ln = vouched
		}
	}
	if src == nil || len(s.conns) >= s.cfg.MaxConns || src.pending[ln] >= s.cfg.PendingPerSource ||
		!a.bucket[ln].has(now) || !src.bucket[ln].has(now) {
		s.stats.refused.Add(1)
		return nil
	}
	if a.pending >= s.cfg.MaxPending {
		victim := a.list[anonymous].oldest // strangers make room first
		if victim == nil && ln == vouched {
			victim = a.list[vouched].oldest
		}
		if victim == nil { // every pending conversation is vouched for, and a stranger asks
			s.stats.refused.Add(1)
			return nil
		}
		s.stats.evicted.Add(1)
		victim.Close(ErrEvicted)
	}

	a.bucket[ln].take()
	src.bucket[ln].take()
	c := s.open(key)
	a.join(c, src, ln)
	return c
}

// sourceOf returns the admission share of addr's source, creating it, or nil if too many
// sources are tracked already.
func (a *admission) sourceOf(addr netip.Addr, now int64) *source {
	addr = addr.Unmap()
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr() // one source per /64
	}
	if src := a.sources[addr]; src != nil {
		return src
	}
	if len(a.sources) >= maxSources {
		return nil
	}
	src := &source{addr: addr}
	for i := range src.bucket {
		src.bucket[i] = newBucket(a.srv.cfg.SourceRate, now)
	}
	a.sources[addr] = src
	return src
}

func (a *admission) join(c *Conn, src *source, ln lane) {
	c.src, c.lane = src, ln
	src.pending[ln]++
	a.pending++
	l := &a.list[ln]
	c.olderPend = l.newest
	if l.newest != nil {
		l.newest.newPend = c
	} else {
		l.oldest = c
	}
	l.newest = c
	a.srv.stats.pending.Store(int64(a.pending))
}

// leave takes c off the pending books (established or closed). Safe to call twice.
func (a *admission) leave(c *Conn) {
	if c.src == nil {
		return
	}
	c.src.pending[c.lane]--
	c.src = nil
	a.pending--
	l := &a.list[c.lane]
	if c.olderPend != nil {
		c.olderPend.newPend = c.newPend
	} else {
		l.oldest = c.newPend
	}
	if c.newPend != nil {
		c.newPend.olderPend = c.olderPend
	} else {
		l.newest = c.olderPend
	}
	c.olderPend, c.newPend = nil, nil
	a.srv.stats.pending.Store(int64(a.pending))
}

// firstFrame returns the body of the frame that begins the push segment of sn 0 in data, a
// datagram that starts a conversation (startsConversation), if that segment holds all of it:
// a client's hello (PROTOCOL.md: the first datagram carries it).
func firstFrame(data []byte) []byte {
	for len(data) >= kcp.IKCP_OVERHEAD {
		n := int(binary.LittleEndian.Uint32(data[20:24]))
		if data[4] == kcp.IKCP_CMD_PUSH && binary.LittleEndian.Uint32(data[12:16]) == 0 {
			seg := data[kcp.IKCP_OVERHEAD : kcp.IKCP_OVERHEAD+n]
			if len(seg) < 4 || int64(binary.BigEndian.Uint32(seg)) > int64(len(seg)-4) {
				return nil
			}
			return seg[4 : 4+binary.BigEndian.Uint32(seg)]
		}
		data = data[kcp.IKCP_OVERHEAD+n:]
	}
	return nil
}

// allowOut reports whether a datagram of size bytes may go to c, whose peer is not validated,
// and counts it if so.
func (a *admission) allowOut(c *Conn, size int) bool {
	size += dgram.Overhead(a.srv.crypt) // bytes on the wire, as bytesIn counts them
	if c.bytesOut+uint64(size) > Amplification*c.bytesIn {
		a.srv.stats.ampDropped.Add(1)
		return false
	}
	c.bytesOut += uint64(size)
	return true
}

// forgetIdleSources drops sources with nothing pending whose rate budget has refilled: they
// are indistinguishable from new ones.
func (a *admission) forgetIdleSources() {
	now := a.srv.loop.Clock().Nanos()
	for addr, src := range a.sources {
		if src.pending == [lanes]int{} && src.bucket[anonymous].full(now) && src.bucket[vouched].full(now) {
			delete(a.sources, addr)
		}
	}
	a.srv.loop.Wheel().Schedule(&a.sweep, now+int64(sourceSweep))
}

// A client whose conversation the server no longer knows (its session expired, the server
// restarted, the conversation was evicted) would otherwise learn it only when its own silence
// timeout fires. So a datagram that holds data for an unknown conversation is answered with a
// reset: one KCP push segment, at the sequence number the client expects next (the una of its
// segment), carrying a goodbye frame with id 0 and code 8 (unauthorized). It is never larger
// than the datagram that caused it (ACK-only datagrams, the client's answer to it, get none) and
// at most resetRate are sent per second.

// resetFrame is the goodbye frame a reset carries.
var resetFrame = func() []byte {
	f, err := wire.AppendFrame(nil, &wire.Header{V: wire.Version, Op: task.OpGoodbye, Code: task.CodeUnauthorized}, nil)
	if err != nil {
		panic(err)
	}
	return f
}()

const resetRate = 1000 // resets per second, over all peers

// reset answers a datagram for an unknown conversation (see above), if it holds data.
func (a *admission) reset(key convKey, data []byte) {
	size := kcp.IKCP_OVERHEAD + len(resetFrame)
	if len(data) < size || !holdsPush(data) || !a.resets.has(a.srv.loop.Clock().Nanos()) {
		return
	}
	a.resets.take()
	seg := a.resetBuf[:size]
	clear(seg[:kcp.IKCP_OVERHEAD])
	binary.LittleEndian.PutUint32(seg, key.conv)
	seg[4] = kcp.IKCP_CMD_PUSH
	binary.LittleEndian.PutUint16(seg[6:], pendingWindow)
	binary.LittleEndian.PutUint32(seg[12:], binary.LittleEndian.Uint32(data[16:20])) // sn: the client's una
	binary.LittleEndian.PutUint32(seg[20:], uint32(len(resetFrame)))
	copy(seg[kcp.IKCP_OVERHEAD:], resetFrame)
	a.srv.stats.resets.Add(1)
	a.srv.emit(key.addr, seg)
	a.srv.loop.Ready().Add(&a.srv.flushAll) // sent with this iteration's batch
}

// holdsPush reports whether a datagram of well-formed segments holds a push (data).
func holdsPush(data []byte) bool {
	for len(data) >= kcp.IKCP_OVERHEAD {
		n := binary.LittleEndian.Uint32(data[20:24])
		if int64(n) > int64(len(data)-kcp.IKCP_OVERHEAD) {
			return false
		}
		if data[4] == kcp.IKCP_CMD_PUSH {
			return true
		}
		data = data[kcp.IKCP_OVERHEAD+int(n):]
	}
	return false
}

// startsConversation reports whether a datagram for an unknown conversation can begin one:
// every segment in it is well formed and one is a push of sequence number 0.
func startsConversation(data []byte) bool {
	start := false
	for len(data) >= kcp.IKCP_OVERHEAD {
		cmd := data[4]
		n := binary.LittleEndian.Uint32(data[20:24])
		if cmd < kcp.IKCP_CMD_PUSH || cmd > kcp.IKCP_CMD_WINS || int64(n) > int64(len(data)-kcp.IKCP_OVERHEAD) {
			return false
		}
		if cmd == kcp.IKCP_CMD_PUSH && binary.LittleEndian.Uint32(data[12:16]) == 0 {
			start = true
		}
		data = data[kcp.IKCP_OVERHEAD+int(n):]
	}
	return start && len(data) == 0
}

// tokenBucket admits rate events per second, in bursts of up to rate.
type tokenBucket struct {
	rate, tokens float64
	at           int64
}

func newBucket(rate int, now int64) tokenBucket {
	return tokenBucket{rate: float64(rate), tokens: float64(rate), at: now}
}

func (b *tokenBucket) refill(now int64) {
	b.tokens = min(b.rate, b.tokens+float64(now-b.at)*b.rate/1e9)
	b.at = now
}

func (b *tokenBucket) has(now int64) bool {
	b.refill(now)
	return b.tokens >= 1
}

func (b *tokenBucket) take() { b.tokens-- }

func (b *tokenBucket) full(now int64) bool {
	b.refill(now)
	return b.tokens >= b.rate
}
