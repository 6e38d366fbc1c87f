//go:build linux

package kcpnet

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

// TestCompactionAgainstTheServer: idle conversations give up their KCP state and get it back
// on the next datagram or Send, and the server never notices.
func TestCompactionAgainstTheServer(t *testing.T) {
	in := startBare(t, bareConfig())
	e := newTestEngine(t, Config{CompactAfter: 20 * 1e6})
	const n = 20
	rs := make([]*rpc, n)
	cs := make([]*Conn, n)
	for i := range rs {
		rs[i], cs[i] = dialRPC(t, e, in.Addr(), DialOptions{})
	}
	ctx := pctest.Context(t)
	for round := range 3 {
		for i, r := range rs {
			want := []byte(fmt.Sprintf("round %d conversation %d", round, i))
			rep, err := r.call(ctx, task.OpEcho, want)
			require.NoError(t, err)
			require.Equal(t, want, rep.value)
		}
		// Every conversation compacted, as counted and as seen on the loop; a datagram still on
		// its way (a slow server's retransmission) may rebuild one for a while: waited for.
		pctest.WaitFor(t, func() bool {
			var compacted int
			e.onLoop(func() {
				for _, c := range cs {
					c.mu.Lock()
					if c.kcp == nil {
						compacted++
					}
					c.mu.Unlock()
				}
			})
			return compacted == n && e.Stats().Compacted == n
		}, "round %d: not every conversation compacted", round)
	}
	assert.GreaterOrEqual(t, e.Stats().Rebuilds, uint64(2*n))
}
