//go:build linux

package kcpnet

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/task"
)

// TestKCPLayout fails if a kcp-go upgrade renames or retypes the fields idle compaction uses.
func TestKCPLayout(t *testing.T) {
	require.NoError(t, kcpLayout.err)
}

// kcpPair is two KCP objects wired back to back in memory.
type kcpPair struct {
	a, b       *kcp.KCP
	toA, toB   [][]byte
	gotA, gotB bytes.Buffer
}

func newKCP(conv uint32, out *[][]byte) *kcp.KCP {
	k := kcp.NewKCP(conv, func(buf []byte, n int) { *out = append(*out, append([]byte(nil), buf[:n]...)) })
	k.NoDelay(1, 10, 2, 1)
	k.WndSize(256, 256)
	return k
}

// pump delivers every datagram in flight, both ways, until none is left, reading what arrives.
func (p *kcpPair) pump() {
	buf := make([]byte, 1<<16)
	for len(p.toA)+len(p.toB) > 0 {
		toA, toB := p.toA, p.toB
		p.toA, p.toB = nil, nil
		for _, d := range toB {
			p.b.Input(d, kcp.IKCP_PACKET_REGULAR, false)
		}
		for _, d := range toA {
			p.a.Input(d, kcp.IKCP_PACKET_REGULAR, false)
		}
		for n := p.a.Recv(buf); n > 0; n = p.a.Recv(buf) {
			p.gotA.Write(buf[:n])
		}
		for n := p.b.Recv(buf); n > 0; n = p.b.Recv(buf) {
			p.gotB.Write(buf[:n])
		}
		kcpFlush(p.a, kcp.IKCP_FLUSH_FULL)
		kcpFlush(p.b, kcp.IKCP_FLUSH_FULL)
	}
}

// TestCompactedKCPContinuesTheConversation: a KCP rebuilt from the saved state of an idle one
// goes on exactly where it left off, both ways; one that is not idle is not saved.
func TestCompactedKCPContinuesTheConversation(t *testing.T) {
	p := &kcpPair{}
	p.a, p.b = newKCP(9, &p.toB), newKCP(9, &p.toA)
	for round := range 5 {
		msgA, msgB := []byte(fmt.Sprintf("a%d", round)), []byte(fmt.Sprintf("b%d", round))
		p.a.Send(msgA)
		p.b.Send(msgB)
		_, ok := saveIdle(p.a)
		assert.False(t, ok, "a KCP with data queued is not idle")
		kcpFlush(p.a, kcp.IKCP_FLUSH_FULL)
		kcpFlush(p.b, kcp.IKCP_FLUSH_FULL)
		p.pump()
		require.Equal(t, msgA, p.gotB.Bytes(), "round %d", round)
		require.Equal(t, msgB, p.gotA.Bytes(), "round %d", round)
		p.gotA.Reset()
		p.gotB.Reset()
		st, ok := saveIdle(p.a)
		require.True(t, ok, "round %d: idle after everything is acknowledged", round)
		p.a = newKCP(9, &p.toB)
		restore(p.a, st)
	}
}

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
	ctx := testCtx(t)
	for round := range 3 {
		for i, r := range rs {
			want := []byte(fmt.Sprintf("round %d conversation %d", round, i))
			rep, err := r.call(ctx, task.OpEcho, want)
			require.NoError(t, err)
			require.Equal(t, want, rep.value)
		}
		// Every conversation compacted, as counted and as seen on the loop; a datagram still on
		// its way (a slow server's retransmission) may rebuild one for a while: waited for.
		waitFor(t, func() bool {
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
		})
	}
	assert.GreaterOrEqual(t, e.Stats().Rebuilds, uint64(2*n))
}
