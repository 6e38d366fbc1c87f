package tests

import (
	"encoding/binary"
	"encoding/json"
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
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// TestConversationFloodFromOneAddressLocksNobodyOut: while one address opens new conversations
// as fast as it can (datagrams that each begin a conversation and never say hello), clients on
// another address still dial, and the flood holds at most its own share of pending ones.
func TestConversationFloodFromOneAddressLocksNobodyOut(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{})
	server := net.UDPAddrFromAddrPort(d.Addr())
	flood, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, server)
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer flood.Close()

	stop := floodConversations(t, flood)
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Refused > 1000 }, "the flood never reached its limits")

	for i := range 10 {
		c, err := client.Dial(d.Addr().String(), client.WithDialTimeout(10*time.Second))
		require.NoError(t, err, "dial %d during the flood", i)
		require.NoError(t, c.Ping(pctest.Context(t)))
		c.Close()
	}
	// Read while the flood goes on: once it stops, its pending conversations expire
	// (PendingTTL), and a slow machine may have spent that long on the dials above.
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Pending > 10 }, "the flood's conversations do not stay pending")
	in, _ := d.Stats()
	t.Logf("flood sent %d datagrams; transport %+v", stop(), in.Transport)
	tcfg := in.Transport
	assert.LessOrEqual(t, tcfg.Pending, 819/8+1, "the flooding address holds at most its share")
}

// floodConversations sends, from conn, datagrams that each begin a new conversation and never
// say hello, about 50k a second at most, until the returned function is called (it returns how
// many were sent) or pctest.Timeout passes.
func floodConversations(tb testing.TB, conn *net.UDPConn) (stop func() int64) {
	done := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		seg := make([]byte, kcp.IKCP_OVERHEAD+8)
		seg[4] = kcp.IKCP_CMD_PUSH
		binary.LittleEndian.PutUint32(seg[20:], 8)
		binary.BigEndian.PutUint32(seg[kcp.IKCP_OVERHEAD:], 4000) // a frame that never ends: stays pending
		deadline := time.Now().Add(pctest.Timeout)
		for conv := uint32(1); time.Now().Before(deadline); conv++ {
			select {
			case <-done:
				return
			default:
			}
			binary.LittleEndian.PutUint32(seg, conv) // a new conversation each time, sn 0
			conn.Write(seg)
			sent.Add(1)
			if conv%64 == 0 {
				time.Sleep(time.Millisecond) // bounded
			}
		}
	})
	var once sync.Once
	stop = func() int64 {
		once.Do(func() { close(done); wg.Wait() })
		return sent.Load()
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// TestFloodFromTheSameAddressAdmitsClientsThatSayWhoTheyAre (#23 item 13): behind a NAT, a
// neighbour flooding new conversations from the client's own address spends that address's
// share of admission; a client whose hello carries a valid token (with authentication) or a
// resume token the server issued (without) is admitted all the same, in a lane of its own.
func TestFloodFromTheSameAddressAdmitsClientsThatSayWhoTheyAre(t *testing.T) {
	floodSameAddress := func(t *testing.T, d *pipecached.Daemon) {
		flood, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(d.Addr()))
		require.NoError(t, err)
		t.Cleanup(func() { flood.Close() })
		before, _ := d.Stats()
		stop := floodConversations(t, flood)
		t.Cleanup(func() { t.Logf("flood sent %d datagrams", stop()) })
		pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Refused > before.Transport.Refused+1000 },
			"the flood never reached its limits")
	}
	t.Run("token", func(t *testing.T) {
		d := testdaemon.Start(t, pipecached.Config{Sessions: stages.SessionConfig{Tokens: []string{"s3cret"}}})
		floodSameAddress(t, d)
		for i := range 5 {
			c, err := client.Dial(d.Addr().String(), client.WithToken("s3cret"), client.WithDialTimeout(pctest.Timeout))
			require.NoError(t, err, "dial %d during the flood", i)
			require.NoError(t, c.Ping(pctest.Context(t)))
			c.Close()
		}
	})
	t.Run("resume", func(t *testing.T) {
		d := testdaemon.Start(t, pipecached.Config{})
		resume := dialRawConn(t, d.Addr().String()).hello("")["resume"].(string)
		floodSameAddress(t, d)
		for i := range 5 {
			r := dialRawConn(t, d.Addr().String())
			body, _ := json.Marshal(map[string]any{"resume": resume, "pad": helloPad})
			h, v := r.call(wire.Header{Op: task.OpHello, ID: 1}, body)
			require.Equal(t, task.CodeOK, h.Code, "resume %d during the flood: %s", i, h.Msg)
			var rep wire.HelloReply
			require.NoError(t, json.Unmarshal(v, &rep))
			assert.True(t, rep.Resumed)
		}
	})
}
