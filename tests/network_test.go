package tests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
	"github.com/pipecache/pipecache/stages"
)

// holRelay forwards UDP between one client and a server. Armed, it drops every client datagram
// holding the first push segment it sees afterwards (and every resend of it), and passes all
// the rest: the server keeps hearing from the client, but nothing after that segment can be
// delivered to it (head-of-line blocking), as in a network cut that loses one datagram again
// and again.
type holRelay struct {
	relayAddr string
	armed     atomic.Bool
	blocked   atomic.Int64 // conv<<32 | sn of the segment held back; -1 none
	dropped   atomic.Int64
}

func newHOLRelay(t *testing.T, server string) *holRelay {
	r := &holRelay{}
	r.blocked.Store(-1)
	r.relayAddr = startRelay(t, server, func(d []byte) bool { return !r.drop(d) })
	return r
}

// startRelay forwards UDP between one client and server and returns the address the client
// dials: each client datagram only if pass, which may change it in place, says so; every server
// datagram.
func startRelay(t *testing.T, server string, pass func(d []byte) bool) string {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	sa, err := net.ResolveUDPAddr("udp", server)
	require.NoError(t, err)
	up, err := net.DialUDP("udp", nil, sa)
	require.NoError(t, err)
	var client atomic.Pointer[net.UDPAddr]
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			if pass(buf[:n]) {
				up.Write(buf[:n])
			}
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // ECONNREFUSED: the server's port-unreachable, weather
			}
			if c := client.Load(); c != nil {
				conn.WriteToUDP(buf[:n], c)
			}
		}
	})
	t.Cleanup(func() { conn.Close(); up.Close(); wg.Wait() })
	return conn.LocalAddr().String()
}

func (r *holRelay) addr() string { return r.relayAddr }

// drop reports whether a client datagram is to be dropped.
func (r *holRelay) drop(d []byte) bool {
	if !r.armed.Load() {
		return false
	}
	for len(d) >= kcp.IKCP_OVERHEAD {
		n := int(binary.LittleEndian.Uint32(d[20:24]))
		if d[4] == kcp.IKCP_CMD_PUSH {
			id := int64(binary.LittleEndian.Uint32(d))<<32 | int64(binary.LittleEndian.Uint32(d[12:16]))
			r.blocked.CompareAndSwap(-1, id)
			if r.blocked.Load() == id {
				r.dropped.Add(1)
				return true
			}
		}
		if n > len(d)-kcp.IKCP_OVERHEAD {
			break
		}
		d = d[kcp.IKCP_OVERHEAD+n:]
	}
	return false
}

// TestAnyTrafficRenewsTheLease: while the client's frames cannot be delivered (one lost
// segment holds them back for many leases) but its datagrams still reach the server, its
// session does not expire: any traffic renews the lease, not only heartbeats.
func TestAnyTrafficRenewsTheLease(t *testing.T) {
	// Lease: five 100 ms beats. Short, so that the cut below spans six leases; not so short
	// that a loaded machine's client, its goroutines held off the cores, falls silent that long.
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{MinHeartbeat: 20 * time.Millisecond, LeaseBeats: 5}})
	relay := newHOLRelay(t, d.Addr().String())
	c, err := client.Dial(relay.addr(), client.WithHeartbeat(100*time.Millisecond, time.Hour))
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	require.NoError(t, c.Ping(ctx))
	session := c.Session()

	relay.armed.Store(true)
	// Six leases pass with the heartbeats held back behind the lost segment; the server hears
	// the client's later segments all along.
	pctest.WaitFor(t, func() bool { return relay.dropped.Load() >= 8 }, "the relay never held a segment back")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	relay.armed.Store(false)
	require.NoError(t, c.Ping(ctx))
	_, err = c.Set(ctx, "after-cut", []byte("v"))
	require.NoError(t, err)
	assert.Equal(t, session, c.Session(), "the session survived")
	assert.Zero(t, d.SessionStats().Expired, "no session expired")
}

// TestDroppedConversationIsNoticedAtOnce: when the server forgets a conversation, the client's
// next datagram is answered with a reset, so the SDK redials and resumes at once: not after its
// silence timeout (an hour here), and calls wait for the new session instead of failing.
func TestDroppedConversationIsNoticedAtOnce(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{LeaseBeats: 1000}})
	c, err := dial(d.Addr().String(), client.WithHeartbeat(50*time.Millisecond, time.Hour))
	require.NoError(t, err)
	defer c.Close()
	ctx := pctest.Context(t)
	_, err = c.Set(ctx, "k", []byte("v"))
	require.NoError(t, err)
	session := c.Session()
	require.NoError(t, d.DropConversations(ctx))
	for range 20 { // every call succeeds: reads wait for (or are retried on) the new session
		it, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(it.Value))
	}
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Resets > 0 }, "no reset was sent")
	assert.Equal(t, session, c.Session(), "the session was resumed")
}

// TestCloseLeavesNoStraySession: closing a client while its heartbeats are in flight never
// leaves a session behind (a heartbeat refused after the goodbye once made the SDK say hello
// again).
func TestCloseLeavesNoStraySession(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{MinHeartbeat: 5 * time.Millisecond, LeaseBeats: 100_000}})
	for range 30 {
		c, err := dial(d.Addr().String(), client.WithHeartbeat(5*time.Millisecond, time.Hour))
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, c.Ping(pctest.Context(t)))
		}
		c.Close()
	}
	pctest.WaitFor(t, func() bool { return d.SessionStats().Sessions == 0 }, "a session outlived its client's Close")
}

// TestCutShorterThanTheLeaseKeepsTheSession: a subscriber cut off completely (every datagram
// lost both ways) for a third of its lease keeps its session: when the network is back, KCP
// resends what was lost, the next heartbeat renews the lease, and the changes made during the
// cut arrive in order, each once, with no resync.
func TestCutShorterThanTheLeaseKeepsTheSession(t *testing.T) {
	// Lease: 6 beats of 500 ms. The cut lasts 500 ms (longer if the writes below are slow);
	// the first heartbeat after it leaves at most 500 ms later: seconds before the lease ends,
	// however slow the machine.
	d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{LeaseBeats: 6}})
	ctx := pctest.Context(t)
	relay := newPausableRelay(t, d.Addr().String(), 0)
	sub, err := client.Dial(relay.addr(), client.WithHeartbeat(500*time.Millisecond, time.Hour))
	require.NoError(t, err)
	defer sub.Close()
	writer := dialT(t, d.Addr().String())
	s, err := sub.Subscribe(ctx, "during-cut")
	require.NoError(t, err)
	session := sub.Session()

	relay.pause(true)
	var versions []uint64
	cutEnds := time.Now().Add(500 * time.Millisecond)
	for i := 0; i < 5 || time.Now().Before(cutEnds); i++ {
		v, err := writer.Set(ctx, "during-cut", []byte(fmt.Sprint(i)))
		require.NoError(t, err)
		versions = append(versions, v)
		time.Sleep(20 * time.Millisecond)
	}
	relay.pause(false)
	for i, want := range versions {
		ev := next(t, s)
		require.NotEqual(t, client.EventResync, ev.Kind, "event %d: a resync: the session was lost", i)
		require.Equal(t, want, ev.Version, "event %d out of order or missing", i)
	}
	require.NoError(t, sub.Ping(ctx))
	assert.Equal(t, session, sub.Session(), "the session survived the cut")
	assert.Zero(t, d.SessionStats().Expired, "no session expired")
}
