package tests

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// TestOverloadedServerKeepsItsSessionsAndServesAgain (#26 item 1): a server on one loop
// (Threads 1) flooded with new conversations from several addresses keeps the sessions it had
// admitted: each of them is answered during the flood (a session told goodbye would fail its
// ping, never hang: the context bounds it); once the flood stops, a new client is admitted
// and served. The load is bounded in count and time (floodConversations); nothing here is
// timed: each step waits for its condition.
func TestOverloadedServerKeepsItsSessionsAndServesAgain(t *testing.T) {
	d := testdaemon.Start(t, pipecached.Config{Threads: 1})
	server := net.UDPAddrFromAddrPort(d.Addr())
	admitted := make([]*client.Client, 20)
	for i := range admitted {
		c, err := client.Dial(d.Addr().String(), client.WithDialTimeout(pctest.Timeout))
		require.NoError(t, err, "admit %d", i)
		t.Cleanup(func() { c.Close() })
		admitted[i] = c
	}

	before, _ := d.Stats()
	var stops []func() int64
	for i := range 4 {
		flood, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, server)
		if err != nil {
			t.Skipf("cannot bind 127.0.0.%d: %v", 2+i, err)
		}
		t.Cleanup(func() { flood.Close() })
		stops = append(stops, floodConversations(t, flood))
	}
	pctest.WaitFor(t, func() bool { in, _ := d.Stats(); return in.Transport.Refused > before.Transport.Refused+4000 },
		"the flood never reached the server's limits")

	var wg sync.WaitGroup
	for i, c := range admitted {
		wg.Go(func() {
			for range 5 {
				if err := c.Ping(pctest.Context(t)); err != nil {
					t.Errorf("admitted session %d during the flood: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	var sent int64
	for _, stop := range stops {
		sent += stop()
	}
	in, _ := d.Stats()
	t.Logf("flood sent %d datagrams; transport %+v", sent, in.Transport)

	// Served again: a new client is admitted (its hello may be deferred while the server still
	// counts as behind; its KCP resends it) and answered, and so is every admitted session.
	c, err := client.Dial(d.Addr().String(), client.WithDialTimeout(pctest.Timeout))
	require.NoError(t, err, "dial after the flood")
	defer c.Close()
	require.NoError(t, c.Ping(pctest.Context(t)))
	for i, c := range admitted {
		require.NoError(t, c.Ping(pctest.Context(t)), "admitted session %d after the flood", i)
	}
}
