package dgram

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xtaci/kcp-go/v5"
)

// TestFlushShim fails if a kcp-go upgrade changes the unexported flush the shim links to.
func TestFlushShim(t *testing.T) {
	var out int
	k := kcp.NewKCP(1, func(b []byte, n int) { out += n })
	k.NoDelay(1, 10, 2, 1)
	k.Send([]byte("hello"))
	next := Flush(k, kcp.IKCP_FLUSH_FULL)
	assert.Equal(t, kcp.IKCP_OVERHEAD+5, out, "flush must send the queued segment at once")
	assert.LessOrEqual(t, next, uint32(10), "flush returns the next check, at most the interval")
}

// TestLayout fails if kcp-go's fields that Save and Reuse use have changed.
func TestLayout(t *testing.T) {
	require.NoError(t, Layout())
}

// pipe is two KCPs that deliver to each other directly.
type pipe struct{ a, b *kcp.KCP }

func newPipe(conv uint32) *pipe {
	p := &pipe{}
	p.a = kcp.NewKCP(conv, func(buf []byte, n int) { p.b.Input(append([]byte(nil), buf[:n]...), kcp.IKCP_PACKET_REGULAR, false) })
	p.b = kcp.NewKCP(conv, func(buf []byte, n int) { p.a.Input(append([]byte(nil), buf[:n]...), kcp.IKCP_PACKET_REGULAR, false) })
	for _, k := range []*kcp.KCP{p.a, p.b} {
		k.NoDelay(1, 10, 2, 1)
	}
	return p
}

func (p *pipe) send(from, to *kcp.KCP, msg []byte) []byte {
	from.Send(msg)
	Flush(from, kcp.IKCP_FLUSH_FULL)
	Flush(to, kcp.IKCP_FLUSH_FULL) // its ACK
	buf := make([]byte, 4096)
	n := to.Recv(buf)
	if n < 0 {
		return nil
	}
	return buf[:n]
}

// TestSaveAndReuseContinueAConversation: a conversation whose KCP is saved and whose state is
// put into another conversation's (idle) KCP goes on exactly where it was, both ways.
func TestSaveAndReuseContinueAConversation(t *testing.T) {
	p := newPipe(7)
	for i := range 5 {
		require.Equal(t, []byte{byte(i)}, p.send(p.a, p.b, []byte{byte(i)}))
		require.Equal(t, []byte{byte(i + 100)}, p.send(p.b, p.a, []byte{byte(i + 100)}))
	}
	p.a.Send([]byte("pending"))
	_, ok := Save(p.a)
	assert.False(t, ok, "a KCP with data queued is not idle")
	Flush(p.a, kcp.IKCP_FLUSH_FULL)
	Flush(p.b, kcp.IKCP_FLUSH_FULL)
	p.b.Recv(make([]byte, 64))

	st, ok := Save(p.a)
	require.True(t, ok)
	reused := newPipe(99).a // an idle KCP of another conversation takes over a's
	Restore(reused, 7, func(buf []byte, n int) { p.b.Input(append([]byte(nil), buf[:n]...), kcp.IKCP_PACKET_REGULAR, false) }, st)
	p.a = reused // b's output callback reaches p.a, the reused KCP, from now on
	for i := range 5 {
		msg := bytes.Repeat([]byte{byte(i)}, 10)
		require.Equal(t, msg, p.send(p.a, p.b, msg), "after reuse, a to b")
		require.Equal(t, msg, p.send(p.b, p.a, msg), "after reuse, b to a")
	}
}

// TestIdleSeesEveryQueue: a KCP is not idle while anything is queued, in flight, readable,
// held out of order, or waiting to be acknowledged.
func TestIdleSeesEveryQueue(t *testing.T) {
	var sent [][]byte
	a := kcp.NewKCP(3, func(buf []byte, n int) { sent = append(sent, append([]byte(nil), buf[:n]...)) })
	a.NoDelay(1, 10, 2, 1)
	b := kcp.NewKCP(3, func([]byte, int) {})
	b.NoDelay(1, 10, 2, 1)
	require.True(t, Idle(a))
	require.True(t, Idle(b))

	a.Send([]byte("queued"))
	assert.False(t, Idle(a), "queued")
	a.Send(bytes.Repeat([]byte("x"), 3000)) // three more segments
	Flush(a, kcp.IKCP_FLUSH_FULL)
	assert.False(t, Idle(a), "in flight")
	require.GreaterOrEqual(t, len(sent), 2)

	// b gets the second datagram only: out of order, and an ACK to send.
	b.Input(sent[len(sent)-1], kcp.IKCP_PACKET_REGULAR, false)
	assert.False(t, Idle(b), "out of order, ACK pending")
	Flush(b, kcp.IKCP_FLUSH_FULL)
	assert.False(t, Idle(b), "out of order")
	for _, d := range sent[:len(sent)-1] {
		b.Input(d, kcp.IKCP_PACKET_REGULAR, false)
	}
	Flush(b, kcp.IKCP_FLUSH_FULL)
	assert.False(t, Idle(b), "readable")
	buf := make([]byte, 8192)
	for b.Recv(buf) >= 0 {
	}
	assert.True(t, Idle(b), "everything read and acknowledged")
}

// TestSaveAndRestoreAllocateNothing: compaction runs for every conversation that falls idle.
func TestSaveAndRestoreAllocateNothing(t *testing.T) {
	k := kcp.NewKCP(5, func([]byte, int) {})
	out := func([]byte, int) {}
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		st, ok := Save(k)
		if !ok {
			t.Fatal("not idle")
		}
		Restore(k, 5, out, st)
	}))
}

func BenchmarkSaveRestore(b *testing.B) {
	k := kcp.NewKCP(5, func([]byte, int) {})
	out := func([]byte, int) {}
	for b.Loop() {
		st, _ := Save(k)
		Restore(k, 5, out, st)
	}
}

// TestIdleSeesAMessageHalfReceived: in message mode, the first fragments of a message wait in
// the receive queue while PeekSize says -1; the KCP is not idle.
func TestIdleSeesAMessageHalfReceived(t *testing.T) {
	var sent [][]byte
	a := kcp.NewKCP(4, func(buf []byte, n int) { sent = append(sent, append([]byte(nil), buf[:n]...)) })
	a.NoDelay(1, 10, 2, 1)
	a.SetMtu(200)
	b := kcp.NewKCP(4, func([]byte, int) {})
	b.NoDelay(1, 10, 2, 1)
	a.Send(make([]byte, 500)) // three fragments
	Flush(a, kcp.IKCP_FLUSH_FULL)
	require.Len(t, sent, 3)
	b.Input(sent[0], kcp.IKCP_PACKET_REGULAR, false)
	Flush(b, kcp.IKCP_FLUSH_FULL)
	require.Less(t, b.PeekSize(), 0)
	assert.False(t, Idle(b), "a message's first fragment waits for the rest")
}

// TestIdleRefusesADeadLink: a KCP whose link kcp-go marked dead is not idle, whatever its
// queues: State does not carry the mark. The SDK's copy of Idle did not look at it, the
// server's did: one side compacted (and so revived) what the other kept.
func TestIdleRefusesADeadLink(t *testing.T) {
	k := kcp.NewKCP(5, func([]byte, int) {})
	require.True(t, Idle(k))
	*u32(k, layout.state) = 0xFFFFFFFF // what flush sets when a segment reaches dead_link sends
	assert.False(t, Idle(k))
	_, ok := Save(k)
	assert.False(t, ok)
}

// TestRestoreIntoAFreshKCP: a conversation whose KCP is saved, dropped and rebuilt from the
// state (as the SDK compacts an idle conversation) goes on where it was, both ways, as often
// as it falls idle.
func TestRestoreIntoAFreshKCP(t *testing.T) {
	p := newPipe(9)
	toB := func(buf []byte, n int) { p.b.Input(append([]byte(nil), buf[:n]...), kcp.IKCP_PACKET_REGULAR, false) }
	for round := range 5 {
		msgA, msgB := []byte(fmt.Sprintf("a%d", round)), []byte(fmt.Sprintf("b%d", round))
		require.Equal(t, msgA, p.send(p.a, p.b, msgA), "round %d", round)
		require.Equal(t, msgB, p.send(p.b, p.a, msgB), "round %d", round)
		Flush(p.a, kcp.IKCP_FLUSH_FULL) // the ACK of b's message
		st, ok := Save(p.a)
		require.True(t, ok, "round %d: idle after everything is acknowledged", round)
		p.a = kcp.NewKCP(9, toB)
		p.a.NoDelay(1, 10, 2, 1)
		Restore(p.a, 9, toB, st)
	}
}
