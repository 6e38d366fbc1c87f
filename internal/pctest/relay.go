package pctest

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// LossyRelay forwards UDP between clients and a server on loopback, dropping, duplicating and
// reordering a share of the datagrams each way. It keeps one socket towards the server per
// client address, so each client (or each engine, whose conversations share one socket) is a
// peer of its own to the server. The draws are seeded: a run is repeatable in what it does to
// the n-th datagram, if not in the order the sockets see them.
type LossyRelay struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	loss   float64
	wg     sync.WaitGroup

	mu       sync.Mutex              // guards upstream and rng
	upstream map[string]*net.UDPConn // client address -> socket towards the server
	rng      *rand.Rand
}

// NewLossyRelay starts a relay to server that drops loss of the datagrams each way, duplicates
// as many and holds as many back until the next one has passed; it is stopped when the test
// ends.
func NewLossyRelay(tb testing.TB, server netip.AddrPort, loss float64) *LossyRelay {
	tb.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	r := &LossyRelay{conn: conn, server: net.UDPAddrFromAddrPort(server), loss: loss,
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

// Addr is the address clients send to.
func (r *LossyRelay) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// held is the datagrams one direction keeps back for reordering, until the next passes. Each
// direction is one goroutine's: it needs no lock.
type held struct{ dgrams [][]byte }

// deliver applies loss, duplication and reordering on one direction, then sends with send.
func (r *LossyRelay) deliver(d *held, b []byte, send func([]byte)) {
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

func (r *LossyRelay) fromClients() {
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

func (r *LossyRelay) fromServer(up *net.UDPConn, client *net.UDPAddr) {
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
