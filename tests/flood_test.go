package tests

import (
	"encoding/binary"
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

	stop := make(chan struct{})
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
			case <-stop:
				return
			default:
			}
			binary.LittleEndian.PutUint32(seg, conv) // a new conversation each time, sn 0
			flood.Write(seg)
			sent.Add(1)
			if conv%64 == 0 {
				time.Sleep(time.Millisecond) // about 50k a second at most: bounded
			}
		}
	})
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
	close(stop)
	wg.Wait()
	tcfg := in.Transport
	t.Logf("flood sent %d datagrams; transport %+v", sent.Load(), tcfg)
	assert.LessOrEqual(t, tcfg.Pending, 819/8+1, "the flooding address holds at most its share")
}
