//go:build linux

package kcpnet

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// lossyRelay forwards UDP between clients and a server, dropping, duplicating and reordering
// a share of datagrams each way (as stages/incoming_test.go's). It keeps one socket towards the
// server per client address: all of an engine's conversations share one.
type lossyRelay struct {
	conn     *net.UDPConn
	server   *net.UDPAddr
	loss     float64
	mu       sync.Mutex
	upstream map[string]*net.UDPConn
	rng      *rand.Rand
	wg       sync.WaitGroup
}

func newLossyRelay(tb testing.TB, server netip.AddrPort, loss float64) *lossyRelay {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	r := &lossyRelay{conn: conn, server: net.UDPAddrFromAddrPort(server), loss: loss,
		upstream: map[string]*net.UDPConn{}, rng: rand.New(rand.NewPCG(5, 5))}
	r.wg.Go(r.fromClients)
	tb.Cleanup(func() {
		conn.Close()
		r.mu.Lock()
		for _, u := range r.upstream {
			u.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *lossyRelay) addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// held is the datagrams one direction keeps back for reordering, until the next passes.
type held struct{ dgrams [][]byte }

func (r *lossyRelay) deliver(d *held, b []byte, send func([]byte)) {
	r.mu.Lock()
	p := r.rng.Float64()
	r.mu.Unlock()
	switch {
	case p < r.loss: // drop
	case p < 2*r.loss: // duplicate
		send(b)
		send(b)
	case p < 3*r.loss: // reorder: hold, then send after the next one
		d.dgrams = append(d.dgrams, append([]byte(nil), b...))
	default:
		send(b)
		for _, h := range d.dgrams {
			send(h)
		}
		d.dgrams = d.dgrams[:0]
	}
}

func (r *lossyRelay) fromClients() {
	var d held
	buf := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		up := r.upstream[from.String()]
		if up == nil {
			if up, err = net.DialUDP("udp", nil, r.server); err != nil {
				r.mu.Unlock()
				continue
			}
			r.upstream[from.String()] = up
			r.wg.Go(func() { r.fromServer(up, from) })
		}
		r.mu.Unlock()
		r.deliver(&d, buf[:n], func(b []byte) { up.Write(b) })
	}
}

func (r *lossyRelay) fromServer(up *net.UDPConn, client *net.UDPAddr) {
	var d held
	buf := make([]byte, 2048)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		r.deliver(&d, buf[:n], func(b []byte) { r.conn.WriteToUDP(b, client) })
	}
}

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
	relay := newLossyRelay(t, in.Addr(), 0.10)
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
		c, err := e.DialAddrPort(relay.addr(), DialOptions{Handler: o})
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
