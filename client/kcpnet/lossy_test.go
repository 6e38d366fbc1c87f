//go:build linux

package kcpnet

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// inOrder records the echo replies of one conversation in the order they arrive.
type inOrder struct {
	mu   sync.Mutex
	got  [][]byte // reply values
	all  chan struct{}
	want int
}

func (o *inOrder) Frame(_ *Conn, body []byte) {
	var h wire.Header
	v, err := wire.Decode(body, &h)
	if err != nil || h.Op != task.OpEcho {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, append([]byte(nil), v...))
	if len(o.got) == o.want {
		close(o.all)
	}
}

func (o *inOrder) Closed(*Conn, error) {}

// TestLossDuplicationReorderingExactlyOnceInOrder: with 10% of datagrams lost, 10% duplicated
// and 10% reordered each way, every conversation over the shared socket gets each of its
// frames exactly once, in the order sent, intact; requests are pipelined, many in flight.
func TestLossDuplicationReorderingExactlyOnceInOrder(t *testing.T) {
	in := startBare(t, bareConfig())
	relay := pctest.NewLossyRelay(t, in.Addr(), 0.10)
	e := newTestEngine(t, Config{})
	const convs, frames = 6, 150
	rng := rand.New(rand.NewPCG(3, 4))
	type conv struct {
		c    *Conn
		o    *inOrder
		sent [][]byte
	}
	cs := make([]*conv, convs)
	for i := range cs {
		o := &inOrder{all: make(chan struct{}), want: frames + 1}
		c, err := e.DialAddrPort(relay.Addr(), DialOptions{Handler: o})
		require.NoError(t, err)
		cs[i] = &conv{c: c, o: o}
	}
	for round := 0; round <= frames; round++ {
		for i, cv := range cs {
			size := 8 // the first frame is small: the server takes only small frames before a hello
			if round > 0 {
				size = 8 + rng.IntN(6000)
			}
			v := make([]byte, size)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			binary.BigEndian.PutUint32(v, uint32(i<<16|round))
			frame, err := wire.AppendFrame(nil, &wire.Header{V: wire.Version, Op: task.OpEcho, ID: uint64(round + 1)}, v)
			require.NoError(t, err)
			require.NoError(t, cv.c.Send(frame))
			cv.sent = append(cv.sent, v)
		}
		if round == 0 {
			for _, cv := range cs { // wait until each conversation is past the pending state
				pctest.WaitFor(t, func() bool { cv.o.mu.Lock(); defer cv.o.mu.Unlock(); return len(cv.o.got) == 1 }, "a conversation never got its first reply")
			}
		}
	}
	for i, cv := range cs {
		select {
		case <-cv.o.all:
		case <-time.After(pctest.Timeout):
			cv.o.mu.Lock()
			t.Fatalf("conversation %d: %d of %d replies after %v", i, len(cv.o.got), frames+1, pctest.Timeout)
		}
		cv.o.mu.Lock()
		require.Len(t, cv.o.got, len(cv.sent))
		for j := range cv.sent {
			if !bytes.Equal(cv.sent[j], cv.o.got[j]) {
				t.Fatalf("conversation %d: reply %d is not request %d (got %x...)", i, j, j, cv.o.got[j][:4])
			}
		}
		cv.o.mu.Unlock()
	}
	st := e.Stats()
	t.Logf("stats: %+v", st)
	assert.Zero(t, st.Malformed)
}
