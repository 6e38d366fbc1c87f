package bench

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

func TestParseSourceIPs(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		in   string
		want []netip.Addr
		err  string
	}{
		{"", nil, ""},
		{"127.0.1.1", addrs("127.0.1.1"), ""},
		{"127.0.1.1-127.0.1.3", addrs("127.0.1.1", "127.0.1.2", "127.0.1.3"), ""},
		{" 10.0.0.5 , 10.0.0.7-10.0.0.8", addrs("10.0.0.5", "10.0.0.7", "10.0.0.8"), ""},
		{"127.0.0.255-127.0.1.1", addrs("127.0.0.255", "127.0.1.0", "127.0.1.1"), ""},
		{"::ffff:127.0.0.2", addrs("127.0.0.2"), ""},
		{"fd00::1-fd00::2", addrs("fd00::1", "fd00::2"), ""},
		{"127.0.1.3-127.0.1.1", nil, "below the first"},
		{"127.0.0.1-::1", nil, "two address families"},
		{"127.0.0.1,::1", nil, "mixed"},
		{"127.0.0.1,127.0.0.1", nil, "twice"},
		{"127.0.0.1-127.0.0.2,127.0.0.2", nil, "twice"},
		{"0.0.0.0", nil, "not a source address"},
		{"224.0.0.1", nil, "not a source address"},
		{"fe80::1%eth0", nil, "zones"},
		{"10.0.0.0-10.0.255.255", nil, "more than"},
		{"localhost", nil, "ParseAddr"},
		{"127.0.0.1-", nil, "ParseAddr"},
		{",", nil, "ParseAddr"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSourceIPs(tc.in)
			if tc.err != "" {
				require.ErrorIs(t, err, ErrBadSourceIPs)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseSourceIPs(f *testing.F) {
	for _, s := range []string{"", "127.0.1.1-127.0.1.64", "10.0.0.5,10.0.0.7-10.0.0.9", "::1-::3", "1.2.3.4-1.2.3", "a-b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSourceIPs(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadSourceIPs)
			return
		}
		require.LessOrEqual(t, len(got), MaxSourceIPs)
		seen := map[netip.Addr]bool{}
		for _, a := range got {
			require.True(t, a.IsValid())
			require.False(t, seen[a], "duplicate %s", a)
			require.Equal(t, got[0].Is4(), a.Is4())
			seen[a] = true
		}
	})
}

// TestBeatRangeCoversEverySessionOnce: over one cycle's slots, every session beats exactly
// once, and the slots' shares differ by one at most (evenly spread).
func TestBeatRangeCoversEverySessionOnce(t *testing.T) {
	for _, tc := range []struct{ n, slots int64 }{{1, 1}, {1, 3000}, {7, 3}, {2000, 100}, {1_000_000, 3000}, {999_999, 6000}} {
		next, lo0, hi0 := int64(0), tc.n, int64(0)
		for k := range tc.slots {
			lo, hi := beatRange(k, tc.slots, tc.n)
			require.Equal(t, next, lo, "n %d slots %d: slot %d starts where the last ended", tc.n, tc.slots, k)
			next = hi
			lo0, hi0 = min(lo0, hi-lo), max(hi0, hi-lo)
		}
		assert.Equal(t, tc.n, next, "n %d slots %d: every session", tc.n, tc.slots)
		assert.LessOrEqual(t, hi0-lo0, int64(1), "n %d slots %d: even", tc.n, tc.slots)
	}
}

// TestOpenQueueOrder: sessions to open again come first (at once, or after retryDelay), then
// those never opened.
func TestOpenQueueOrder(t *testing.T) {
	var q openQueue
	q.init(3)
	now := int64(0)
	take := func() int { idx, _ := q.poll(now); return idx }
	assert.Equal(t, 0, take())
	q.again(0, true, now) // failed: again after retryDelay
	q.again(7, false, now)
	assert.Equal(t, 7, take(), "again at once before new ones")
	assert.Equal(t, 1, take())
	assert.Equal(t, 2, take())
	idx, wait := q.poll(now)
	assert.Equal(t, -1, idx)
	assert.Equal(t, retryDelay, wait)
	now += int64(retryDelay)
	assert.Equal(t, 0, take(), "due")
	idx, wait = q.poll(now)
	assert.Equal(t, -1, idx)
	assert.Zero(t, wait, "nothing left")
}

// testIdle is an Idle with no engine (NewIdle, not Run), for the frame handler alone.
func testIdle(tb testing.TB, n int) *Idle {
	tb.Helper()
	r, err := NewIdle(IdleConfig{Addr: "127.0.0.1:1", Sessions: n, Duration: time.Second, Storm: n})
	require.NoError(tb, err)
	r.start = time.Now() // as Run does: the run clock starts at 0
	return r
}

func frameBody(tb testing.TB, h wire.Header, value []byte) []byte {
	tb.Helper()
	h.V = wire.Version
	f, err := wire.AppendFrame(nil, &h, value)
	require.NoError(tb, err)
	return f[4:]
}

// TestIdleFrames: the session's answers to what the server says, without a network.
func TestIdleFrames(t *testing.T) {
	okHello := []byte(`{"session":9,"resume":"abcd","resumed":false,"heartbeat_ms":1500,"lease_ms":4500}`)
	type step struct {
		h     wire.Header
		value []byte
	}
	for _, tc := range []struct {
		name      string
		resume    string // the session's token before
		steps     []step
		wantState uint8
		check     func(t *testing.T, r *Idle, s *idleSession)
	}{
		{"hello answered", "", []step{{wire.Header{Op: task.OpHello, ID: 1}, okHello}}, stLive, func(t *testing.T, r *Idle, s *idleSession) {
			assert.Equal(t, uint64(9), s.id)
			assert.Equal(t, "abcd", s.resume)
			assert.Equal(t, int64(1), r.c.opened.Load())
			assert.Equal(t, int64(1500*time.Millisecond), r.cycle.Load())
			assert.Positive(t, r.allOpenAt.Load())
		}},
		{"resume refused: a new session on the same conversation", "old", []step{
			{wire.Header{Op: task.OpHello, ID: 1, Code: task.CodeUnauthorized}, nil},
			{wire.Header{Op: task.OpHello, ID: 2}, okHello}}, stLive, func(t *testing.T, r *Idle, s *idleSession) {
			assert.Equal(t, int64(1), r.c.expired.Load())
			assert.Equal(t, int64(1), r.c.opened.Load())
			assert.Equal(t, int64(1), r.c.hellos.Load(), "the second hello")
		}},
		{"wrong token: not again", "", []step{{wire.Header{Op: task.OpHello, ID: 1, Code: task.CodeUnauthorized}, nil}}, stFailed,
			func(t *testing.T, r *Idle, s *idleSession) {
				assert.Equal(t, int64(1), r.c.helloFail[task.CodeUnauthorized].Load())
			}},
		{"busy: again later", "", []step{{wire.Header{Op: task.OpHello, ID: 1, Code: task.CodeBusy}, nil}}, stClosed,
			func(t *testing.T, r *Idle, s *idleSession) {
				assert.Equal(t, map[string]int64{"busy": 1}, r.c.snapshot().HelloFailures)
				assert.Len(t, r.q.later, 1)
			}},
		{"unreadable reply", "", []step{{wire.Header{Op: task.OpHello, ID: 1}, []byte(`{"session":`)}}, stClosed, nil},
		{"reset while live", "", []step{{wire.Header{Op: task.OpHello, ID: 1}, okHello}, {wire.Header{Op: task.OpGoodbye, Code: task.CodeUnauthorized}, nil}},
			stClosed, func(t *testing.T, r *Idle, s *idleSession) {
				assert.Equal(t, int64(1), r.c.resets.Load())
				assert.Equal(t, "abcd", s.resume, "kept, to resume")
				assert.Equal(t, []int32{0}, r.q.now, "to open again at once")
			}},
		{"a reply to nothing", "", []step{{wire.Header{Op: task.OpGet, ID: 99}, nil}, {wire.Header{Op: task.OpPush, Seq: 1}, nil}}, stHello,
			func(t *testing.T, r *Idle, s *idleSession) { assert.Equal(t, int64(2), r.c.unexpected.Load()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testIdle(t, 1)
			s := &r.sess[0]
			s.resume, s.state, s.reqID, s.helloID, s.resuming = tc.resume, stHello, 1, 1, tc.resume != ""
			for _, st := range tc.steps {
				r.frame(s, nil, frameBody(t, st.h, st.value))
			}
			assert.Equal(t, tc.wantState, s.state)
			assert.Equal(t, int64(btoi(s.state == stLive)), r.c.live.Load())
			if tc.check != nil {
				tc.check(t, r, s)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzIdleFrame: whatever the server sends, in whatever state, the handler neither panics nor
// loses count of the live sessions.
func FuzzIdleFrame(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"op":"hello","id":1}` + "\x00" + `{"session":3,"resume":"aa","resumed":true,"heartbeat_ms":100}`,
		`{"v":1,"op":"heartbeat","id":2}`, `{"v":1,"op":"heartbeat","id":1,"code":8}`,
		`{"v":1,"op":"goodbye","code":8,"msg":"session expired"}`, `{"v":1,"op":"stats","id":3}` + "\x00" + `{"sessions":5}`,
		`{"v":1,"op":"goodbye","id":4}`, `{"v":1,"op":"push","seq":1}`, `not json`,
	} {
		hdr, value, _ := strings.Cut(seed, "\x00")
		for state := range stFailed + 1 {
			f.Add(state, hdr, []byte(value))
		}
	}
	f.Fuzz(func(t *testing.T, state uint8, hdr string, value []byte) {
		r := testIdle(t, 1)
		s := &r.sess[0]
		s.state, s.reqID, s.helloID, s.beatID, s.statsID, s.resume = state%(stFailed+1), 4, 1, 2, 3, "tok"
		s.storm = true
		r.storm.dropped.Store(1)
		if s.state == stLive {
			r.c.live.Store(1)
		}
		body := append([]byte{byte(len(hdr) >> 8), byte(len(hdr))}, hdr...)
		r.frame(s, nil, append(body, value...))
		assert.Equal(t, int64(btoi(s.state == stLive)), r.c.live.Load())
		assert.Empty(t, r.slots, "no slot left taken")
	})
}

// TestNewIdleRejects: configurations that cannot run are refused before anything is sent.
func TestNewIdleRejects(t *testing.T) {
	good := IdleConfig{Addr: "127.0.0.1:7070", Sessions: 10, Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*IdleConfig)
	}{
		{"no sessions", func(c *IdleConfig) { c.Sessions = 0 }},
		{"no duration", func(c *IdleConfig) { c.Duration = 0 }},
		{"hello too short", func(c *IdleConfig) { c.HelloSize = wire.MinHello - 1 }},
		{"hello too long", func(c *IdleConfig) { c.HelloSize = maxHelloSize + 1 }},
		{"storm larger than the sessions", func(c *IdleConfig) { c.Storm = 11 }},
		{"negative rate", func(c *IdleConfig) { c.Rate = -1 }},
		{"heartbeat too short", func(c *IdleConfig) { c.Heartbeat = time.Millisecond }},
		{"max missed beyond a byte", func(c *IdleConfig) { c.MaxMissed = 256 }},
		{"source of another family", func(c *IdleConfig) { c.SourceIPs = []netip.Addr{netip.MustParseAddr("::1")} }},
		{"source not this host's", func(c *IdleConfig) { c.SourceIPs = []netip.Addr{netip.MustParseAddr("192.0.2.1")} }},
		{"bad address", func(c *IdleConfig) { c.Addr = "nowhere" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := NewIdle(cfg)
			assert.Error(t, err)
		})
	}
	_, err := NewIdle(good)
	assert.NoError(t, err)
}

// TestHelloTimeouts: a hello unanswered for HelloTimeout is given up and its session queued to
// open again after retryDelay; one answered meanwhile, or not yet due, is left alone.
func TestHelloTimeouts(t *testing.T) {
	r := testIdle(t, 3)
	timeout := int64(r.cfg.HelloTimeout)
	for i := range r.sess {
		s := &r.sess[i]
		s.mu.Lock()
		r.slots <- struct{}{}
		s.slot = true
		r.sendHello(s, nil, &r.openBuf)
		s.mu.Unlock()
	}
	s1 := &r.sess[1]
	r.frame(s1, nil, frameBody(t, wire.Header{Op: task.OpHello, ID: s1.helloID},
		[]byte(`{"session":5,"resume":"r","heartbeat_ms":1000}`)))
	base := r.waits[0].at
	r.waits[2].at += 2 * timeout // as if sent later

	r.sweepHellos(base + timeout + 1)
	assert.Equal(t, int64(1), r.c.helloTimeouts.Load())
	assert.Equal(t, stClosed, r.sess[0].state)
	assert.Equal(t, stLive, r.sess[1].state, "answered")
	assert.Equal(t, stHello, r.sess[2].state, "not due yet")
	require.Len(t, r.q.later, 1, "again after retryDelay, not at once")
	assert.Equal(t, int32(0), r.q.later[0].idx)
	assert.Empty(t, r.q.now)
	assert.Len(t, r.slots, 1, "the timed-out and the answered hello gave their slots back")
}

// TestUnansweredHeartbeatsGiveTheConversationUp: a session whose last MaxMissed heartbeats were
// unanswered when the next was due gives its conversation up (silent) and queues itself to open
// again; an answer, even to an older heartbeat, starts the count again.
func TestUnansweredHeartbeatsGiveTheConversationUp(t *testing.T) {
	for _, maxMissed := range []int{0, 3} { // 0: the default, 2
		r, err := NewIdle(IdleConfig{Addr: "127.0.0.1:1", Sessions: 1, Duration: time.Second, MaxMissed: maxMissed})
		require.NoError(t, err)
		r.start = time.Now()
		want := max(maxMissed, defaultMaxMissed)
		s := &r.sess[0]
		s.state = stLive
		r.c.live.Add(1)
		r.beat(s, 0) // sent, unanswered
		r.beat(s, 1) // one missed
		s.mu.Lock()
		r.heartbeatReply(s, nil, &wire.Header{Op: task.OpHeartbeat, ID: s.beatID - 1}) // the first, late
		s.mu.Unlock()
		assert.Zero(t, s.missed, "a late answer: the server is there")
		for i := range want {
			assert.Equal(t, stLive, s.state, "after %d missed of %d", i, want)
			r.beat(s, int64(2+i))
		}
		assert.Equal(t, stClosed, s.state, "given up after %d missed", want)
		assert.Equal(t, int64(1), r.c.silent.Load())
		assert.Equal(t, int64(1), r.c.beatLate.Load())
		assert.Zero(t, r.c.live.Load())
		assert.Equal(t, int64(want+1), r.c.beats.Load(), "heartbeats sent: none once given up")
		assert.Len(t, r.q.now, 1, "queued to open again")
	}
}
