package tests

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// next waits for the next event on s.
func next(t *testing.T, s *client.Subscription) client.Event {
	t.Helper()
	select {
	case ev, ok := <-s.C:
		require.True(t, ok, "subscription closed")
		return ev
	case <-time.After(pctest.Timeout):
		t.Fatal("no event")
		return client.Event{}
	}
}

func TestSubscribersGetEveryChangeInOrder(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	ctx := pctest.Context(t)
	sub, writer := dialT(t, d.Addr().String()), dialT(t, d.Addr().String())
	key, err := sub.Subscribe(ctx, "k", client.WithValues())
	require.NoError(t, err)
	room, err := sub.Subscribe(ctx, "room:", client.Prefix())
	require.NoError(t, err)

	v1, err := writer.Set(ctx, "k", []byte("one"))
	require.NoError(t, err)
	v2, err := writer.Set(ctx, "k", []byte("two"))
	require.NoError(t, err)
	require.NoError(t, writer.Delete(ctx, "k"))
	_, err = writer.Set(ctx, "other", []byte("x")) // nobody subscribed
	require.NoError(t, err)
	vr, err := writer.Set(ctx, "room:1", []byte("hi"))
	require.NoError(t, err)

	ev := next(t, key)
	assert.Equal(t, client.Event{Kind: client.EventSet, Key: "k", Version: v1, Value: []byte("one"), Seq: ev.Seq}, ev)
	ev = next(t, key)
	assert.Equal(t, client.EventSet, ev.Kind)
	assert.Equal(t, v2, ev.Version)
	assert.Equal(t, "two", string(ev.Value))
	ev = next(t, key)
	assert.Equal(t, client.EventDelete, ev.Kind)
	assert.Greater(t, ev.Version, v2, "a delete is a change with its own version")
	ev = next(t, room)
	assert.Equal(t, client.EventSet, ev.Kind)
	assert.Equal(t, "room:1", ev.Key)
	assert.Equal(t, vr, ev.Version)
	assert.Nil(t, ev.Value, "a subscription without WithValues gets no values")

	require.NoError(t, key.Unsubscribe(ctx))
	_, err = writer.Set(ctx, "k", []byte("three"))
	require.NoError(t, err)
	_, open := <-key.C
	assert.False(t, open, "Unsubscribe closes the channel")
}

func TestExpiryIsPushed(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Cache: stages.CacheConfig{NoTTLJitter: true}})
	ctx := pctest.Context(t)
	c := dialT(t, d.Addr().String())
	ps, err := c.Subscribe(ctx, "tmp:", client.Prefix())
	require.NoError(t, err)
	v, err := c.Set(ctx, "tmp:1", []byte("v"), client.WithTTL(50*time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, client.EventSet, next(t, ps).Kind)
	ev := next(t, ps)
	assert.Equal(t, client.EventExpire, ev.Kind)
	assert.Equal(t, "tmp:1", ev.Key)
	assert.Equal(t, v, ev.Version, "an expiry carries the version that expired")
}

// TestResumeReplaysExactlyWhatWasMissed: the subscriber's conversation is cut while 20 changes
// happen; it comes back, resumes its session with the last sequence it saw, and receives the 20
// changes in order, once each, without a resync.
func TestResumeReplaysExactlyWhatWasMissed(t *testing.T) {
	// A long lease: this tests replay, and a slow machine must not expire the session first.
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{LeaseBeats: 100}})
	ctx := pctest.Context(t)
	sub, err := dial(d.Addr().String(), client.WithHeartbeat(50*time.Millisecond, 300*time.Millisecond))
	require.NoError(t, err)
	defer sub.Close()
	writer := dialT(t, d.Addr().String())
	s, err := sub.Subscribe(ctx, "counter")
	require.NoError(t, err)
	_, err = writer.Set(ctx, "counter", []byte("0"))
	require.NoError(t, err)
	first := next(t, s)

	require.NoError(t, dropAllConversations(d)) // the writer redials too; the subscriber misses pushes
	var versions []uint64
	for i := 1; i <= 20; i++ {
		pctest.WaitFor(t, func() bool {
			v, err := writer.Set(ctx, "counter", []byte(fmt.Sprint(i)))
			if err == nil {
				versions = append(versions, v)
			}
			return err == nil
		}, "writer never got back")
	}
	for i, want := range versions {
		ev := next(t, s)
		require.NotEqual(t, client.EventResync, ev.Kind, "event %d: a resync, although the window holds everything", i)
		assert.Equal(t, want, ev.Version, "event %d out of order or missing", i)
		assert.Equal(t, first.Seq+uint64(i)+1, ev.Seq)
	}
}

// TestGapsAreAnnouncedWithAResync: a subscriber away while 30 changes happen, with a replay
// window of 4, never silently skips changes when it comes back. Two ways: its session survived
// (a long lease): the server sent 4 pushes, held the rest back as the client did not
// acknowledge them, and coalesced them to the newest, which it pushes marked as coalesced after
// replaying the 4; or its session expired and the SDK, given a new one, subscribes again and
// announces a resync.
func TestGapsAreAnnouncedWithAResync(t *testing.T) {
	for _, tc := range []struct {
		name       string
		leaseBeats int
		byServer   bool
	}{
		{"held back and coalesced", 1000, true}, // a 50 s lease: a slow machine never ends it
		{"session expired", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{ReplayWindow: 4, LeaseBeats: tc.leaseBeats}})
			ctx := pctest.Context(t)
			relay := newPausableRelay(t, d.Addr().String(), 0)
			sub, err := client.Dial(relay.addr(), client.WithHeartbeat(50*time.Millisecond, 300*time.Millisecond))
			require.NoError(t, err)
			defer sub.Close()
			writer := dialT(t, d.Addr().String())
			s, err := sub.Subscribe(ctx, "hot")
			require.NoError(t, err)

			relay.pause(true) // cut off long enough for the subscriber to give its conversation up
			pctest.WaitFor(t, func() bool { return !sub.Connected() }, "the subscriber never noticed the cut")
			if !tc.byServer {
				pctest.WaitFor(t, func() bool { return d.SessionStats().Expired > 0 }, "the session never expired")
			}
			for i := range 30 {
				_, err := writer.Set(ctx, "hot", []byte(fmt.Sprint(i)))
				require.NoError(t, err)
			}
			relay.pause(false)
			for ev := next(t, s); ev.Kind != client.EventResync && !ev.Coalesced; ev = next(t, s) {
			}
			if tc.byServer {
				assert.Positive(t, d.SessionStats().Coalesced, "the server should have coalesced the held changes")
				assert.Zero(t, d.SessionStats().Expired)
			}
			// Either way the subscription goes on: the next change arrives.
			v, err := writer.Set(ctx, "hot", []byte("after"))
			require.NoError(t, err)
			for {
				ev := next(t, s)
				if ev.Version == v {
					break
				}
			}
		})
	}
}

// pausableRelay forwards UDP between clients and a server, or drops everything while paused.
type pausableRelay struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	paused atomic.Bool
	loss   float64 // share of datagrams dropped, and as many duplicated, each way
	mu     sync.Mutex
	up     map[string]*net.UDPConn
}

func newPausableRelay(t *testing.T, server string, loss float64) *pausableRelay {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	sa, err := net.ResolveUDPAddr("udp", server)
	require.NoError(t, err)
	r := &pausableRelay{conn: conn, server: sa, loss: loss, up: map[string]*net.UDPConn{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			up := r.up[from.String()]
			if up == nil {
				if up, err = net.DialUDP("udp", nil, sa); err != nil {
					r.mu.Unlock()
					continue
				}
				r.up[from.String()] = up
				wg.Go(func() {
					b := make([]byte, 2048)
					for {
						n, err := up.Read(b)
						if err != nil {
							return
						}
						for range r.copies() {
							conn.WriteToUDP(b[:n], from)
						}
					}
				})
			}
			r.mu.Unlock()
			for range r.copies() {
				up.Write(buf[:n])
			}
		}
	})
	t.Cleanup(func() {
		conn.Close()
		r.mu.Lock()
		for _, u := range r.up {
			u.Close()
		}
		r.mu.Unlock()
		wg.Wait()
	})
	return r
}

func (r *pausableRelay) addr() string  { return r.conn.LocalAddr().String() }
func (r *pausableRelay) pause(on bool) { r.paused.Store(on) }

// copies returns how many times to forward a datagram: 0 while paused or when it is lost, 2
// when it is duplicated, else 1.
func (r *pausableRelay) copies() int {
	if r.paused.Load() {
		return 0
	}
	switch p := rand.Float64(); {
	case p < r.loss:
		return 0
	case p < 2*r.loss:
		return 2
	}
	return 1
}

// TestSlowSubscriberIsCoalescedAndResyncedWhileAFastOneKeepsUp: two subscribers to the same
// prefix; the slow one is cut off (it takes and acknowledges nothing). The fast one gets every
// change, in order, none coalesced. The slow one gets its window's worth, then the held changes
// coalesced to the newest per key; when it falls further behind than its backlog holds, a resync.
func TestSlowSubscriberIsCoalescedAndResyncedWhileAFastOneKeepsUp(t *testing.T) {
	const window, backlog = 64, 8
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{PushWindow: window, PushBacklog: backlog, LeaseBeats: 1000}})
	ctx := pctest.Context(t)
	relay := newPausableRelay(t, d.Addr().String(), 0)
	slow, err := client.Dial(relay.addr(), client.WithHeartbeat(50*time.Millisecond, time.Hour)) // never gives up
	require.NoError(t, err)
	defer slow.Close()
	fast, writer := dialT(t, d.Addr().String()), dialT(t, d.Addr().String())
	ss, err := slow.Subscribe(ctx, "k:", client.Prefix())
	require.NoError(t, err)
	fs, err := fast.Subscribe(ctx, "k:", client.Prefix(), client.Buffer(1<<14))
	require.NoError(t, err)

	var all []uint64 // every version, in commit order (one writer)
	last := map[string]uint64{}
	write := func(key string) {
		v, err := writer.Set(ctx, key, []byte("x"))
		require.NoError(t, err)
		all = append(all, v)
		last[key] = v
	}

	// Phase 1: the slow subscriber's window fills, then 16 more changes of 4 keys wait, coalesced.
	relay.pause(true)
	for i := range window + 16 {
		write(fmt.Sprint("k:", i%4))
	}
	pctest.WaitFor(t, func() bool { return d.SessionStats().Coalesced >= 12 }, "the held changes were not coalesced")
	relay.pause(false)
	for i := range window {
		ev := next(t, ss)
		require.False(t, ev.Coalesced)
		require.Equal(t, all[i], ev.Version, "slow subscriber, push %d", i)
	}
	for k := range 4 {
		ev := next(t, ss)
		require.True(t, ev.Coalesced, "the held change of k:%d should say it skipped versions", k)
		require.Equal(t, last[fmt.Sprint("k:", k)], ev.Version, "coalesced to the newest version")
	}

	// Phase 2: more keys wait than the backlog holds: the slow subscriber gets a resync.
	relay.pause(true)
	for i := range window + 8 {
		write(fmt.Sprint("k:", i%4))
	}
	for k := range 2 * backlog {
		write(fmt.Sprint("k:x", k))
	}
	pctest.WaitFor(t, func() bool { return d.SessionStats().Coalesced >= 12+2*backlog }, "the backlog never overflowed")
	relay.pause(false)
	for ev := next(t, ss); ev.Kind != client.EventResync; ev = next(t, ss) {
		require.NotEqual(t, "k:x", ev.Key[:3], "changes beyond the backlog must not be pushed, only announced")
	}
	v, err := writer.Set(ctx, "k:after", nil)
	require.NoError(t, err)
	ev := next(t, ss)
	assert.Equal(t, v, ev.Version, "after the resync the stream goes on")

	// Meanwhile the fast subscriber got every change, in order, none coalesced.
	for i, want := range append(all, v) {
		ev := next(t, fs)
		require.False(t, ev.Coalesced, "fast subscriber, push %d", i)
		require.Equal(t, want, ev.Version, "fast subscriber, push %d", i)
	}
	assert.Positive(t, d.SessionStats().Resyncs)
}
