package dgram

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var loopback4 = netip.MustParseAddrPort("127.0.0.1:0")

func listen(tb testing.TB, o SocketOptions) Socket {
	s, err := Listen(o)
	require.NoError(tb, err)
	tb.Cleanup(func() { unix.Close(s.FD) })
	return s
}

// dualStack returns an IPv6 socket bound to 127.0.0.1 as an IPv4-mapped address: the way a
// daemon listening on [::] hears IPv4 clients, on loopback only.
func dualStack(tb testing.TB) Socket {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Skipf("no IPv6: %v", err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	mapped := netip.AddrFrom16(netip.MustParseAddr("127.0.0.1").As16())
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: mapped.As16()}); err != nil {
		tb.Skipf("cannot bind %s: %v", mapped, err)
	}
	sa, err := unix.Getsockname(fd)
	require.NoError(tb, err)
	return Socket{FD: fd, Family: unix.AF_INET6, Local: sockaddrAddrPort(sa)}
}

type received struct {
	data string
	from netip.AddrPort
}

// recvAll reads from fd until want datagrams have arrived (a generous bound: the datagrams
// were sent before, on loopback).
func recvAll(tb testing.TB, rb *RecvBatch, fd, want int) []received {
	var got []received
	for deadline := time.Now().Add(time.Minute); len(got) < want; {
		n, err := rb.Recv(fd)
		require.NoError(tb, err)
		for i := range n {
			data, from, ok := rb.Datagram(i)
			require.True(tb, ok)
			got = append(got, received{string(data), from})
		}
		if n == 0 {
			require.True(tb, time.Now().Before(deadline), "got %d of %d datagrams", len(got), want)
			time.Sleep(time.Millisecond)
		}
	}
	return got
}

func send(tb testing.TB, sb *SendBatch, to netip.AddrPort, data ...string) {
	for _, d := range data {
		require.True(tb, sb.Queue(to, []byte(d), nil))
	}
	r, err := sb.Send()
	require.NoError(tb, err)
	require.Equal(tb, Sent{Datagrams: len(data), Calls: 1}, r)
	require.Zero(tb, sb.Len())
}

// TestDualStackSocketSpeaksUnmappedIPv4: an IPv6 socket that hears an IPv4 peer reports it as
// the IPv4 socket would (not ::ffff:a.b.c.d), and sends to that address. The server's copy of
// the batch code did not unmap, the SDK's did: a peer's address differed with the socket's
// family.
func TestDualStackSocketSpeaksUnmappedIPv4(t *testing.T) {
	v4 := listen(t, SocketOptions{Addr: loopback4})
	v6 := dualStack(t)
	to6 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), v6.Local.Port())
	send(t, NewSendBatch(v4.FD, v4.Family, 4, nil), to6, "hello")

	rb := NewRecvBatch(4)
	got := recvAll(t, rb, v6.FD, 1)
	assert.Equal(t, []received{{"hello", v4.Local}}, got, "the sender as an IPv4 address")

	send(t, NewSendBatch(v6.FD, v6.Family, 4, nil), got[0].from, "reply")
	assert.Equal(t, []received{{"reply", to6}}, recvAll(t, rb, v4.FD, 1))
}

// TestBatchesCarrySealedDatagrams: a batch of datagrams, sealed, arrives whole and in order,
// and opens with the key.
func TestBatchesCarrySealedDatagrams(t *testing.T) {
	a, b := listen(t, SocketOptions{Addr: loopback4}), listen(t, SocketOptions{Addr: loopback4, Buffer: 1 << 20})
	block := testBlock(t, 7)
	sb := NewSendBatch(a.FD, a.Family, 8, block)
	var want []string
	for i := range 8 {
		want = append(want, string(bytes.Repeat([]byte{byte('a' + i)}, 24+i*100)))
	}
	send(t, sb, b.Local, want...)
	got := recvAll(t, NewRecvBatch(3), b.FD, len(want))
	for i, r := range got {
		assert.Equal(t, a.Local, r.from)
		data, ok := Open(block, []byte(r.data))
		require.True(t, ok, "datagram %d", i)
		assert.Equal(t, want[i], string(data), "datagram %d", i)
	}
}

// TestSendBatchRefusesWhatItCannotHold: a full batch and an oversized datagram are refused,
// not truncated; after a Send the batch takes datagrams again.
func TestSendBatchRefusesWhatItCannotHold(t *testing.T) {
	a, b := listen(t, SocketOptions{Addr: loopback4}), listen(t, SocketOptions{Addr: loopback4})
	sb := NewSendBatch(a.FD, a.Family, 2, testBlock(t, 1))
	assert.False(t, sb.Queue(b.Local, make([]byte, MaxDatagram-CryptHeader), []byte{1}), "too large")
	assert.True(t, sb.Queue(b.Local, make([]byte, MaxDatagram-CryptHeader-1), []byte{1}), "the largest")
	assert.True(t, sb.Queue(b.Local, []byte("x"), nil))
	assert.False(t, sb.Queue(b.Local, []byte("y"), nil), "full")
	assert.Equal(t, 2, sb.Len())
	assert.Equal(t, 2, sb.Discard())
	assert.True(t, sb.Queue(b.Local, []byte("z"), nil))
}

// TestSendBatchDropsWhatTheKernelRefuses: a datagram the kernel refuses (here: an IPv6
// destination from an IPv4 socket) is dropped and counted; the rest of the batch leaves.
func TestSendBatchDropsWhatTheKernelRefuses(t *testing.T) {
	a, b := listen(t, SocketOptions{Addr: loopback4}), listen(t, SocketOptions{Addr: loopback4})
	sb := NewSendBatch(a.FD, a.Family, 4, nil)
	require.True(t, sb.Queue(b.Local, []byte("one"), nil))
	require.True(t, sb.Queue(netip.MustParseAddrPort("[2001:db8::1]:9"), []byte("lost"), nil))
	require.True(t, sb.Queue(b.Local, []byte("two"), nil))
	r, err := sb.Send()
	require.NoError(t, err)
	assert.Equal(t, 2, r.Datagrams)
	assert.Equal(t, 1, r.Dropped)
	got := recvAll(t, NewRecvBatch(4), b.FD, 2)
	assert.Equal(t, []received{{"one", a.Local}, {"two", a.Local}}, got)
}

// TestRecvBatchDropsTruncatedDatagrams: a datagram larger than MaxDatagram is not taken for
// a shorter one.
func TestRecvBatchDropsTruncatedDatagrams(t *testing.T) {
	a, b := listen(t, SocketOptions{Addr: loopback4}), listen(t, SocketOptions{Addr: loopback4})
	sa := &unix.SockaddrInet4{Port: int(b.Local.Port()), Addr: b.Local.Addr().As4()}
	require.NoError(t, unix.Sendto(a.FD, make([]byte, MaxDatagram+1), 0, sa))
	rb := NewRecvBatch(2)
	var n int
	for deadline := time.Now().Add(time.Minute); n == 0; {
		var err error
		n, err = rb.Recv(b.FD)
		require.NoError(t, err)
		require.True(t, time.Now().Before(deadline))
	}
	_, _, ok := rb.Datagram(0)
	assert.False(t, ok)
}

// TestListenRefusesAnAddressInUse: no SO_REUSEADDR; SO_REUSEPORT only when both ask.
func TestListenRefusesAnAddressInUse(t *testing.T) {
	first := listen(t, SocketOptions{Addr: loopback4})
	_, err := Listen(SocketOptions{Addr: first.Local})
	assert.ErrorIs(t, err, unix.EADDRINUSE)
	shard := listen(t, SocketOptions{Addr: loopback4, ReusePort: true})
	listen(t, SocketOptions{Addr: shard.Local, ReusePort: true})
}

// errCmsg builds a control message as the kernel does for IP_RECVERR.
func errCmsg(errno uint32, origin uint8) []byte {
	data := make([]byte, sizeofSockExtendedErr+16)
	binary.NativeEndian.PutUint32(data, errno)
	data[4] = origin
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_RECVERR
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestParseExtendedErr(t *testing.T) {
	errno, origin := parseExtendedErr(errCmsg(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP))
	if errno != unix.ECONNREFUSED || origin != unix.SO_EE_ORIGIN_ICMP {
		t.Fatalf("got %v, %d", errno, origin)
	}
	if se := (SockErr{Errno: errno, Origin: origin}); !se.Refused() {
		t.Error("a port unreachable is a refusal")
	}
	if se := (SockErr{Errno: unix.EMSGSIZE, Origin: 1}); se.Refused() {
		t.Error("a local EMSGSIZE is not")
	}
	if errno, _ := parseExtendedErr([]byte{1, 2, 3}); errno != 0 {
		t.Errorf("garbage gave errno %v", errno)
	}
}

// TestErrQueueHearsAPortUnreachable: with RecvErr, a datagram to a port nobody listens on
// comes back as a refusal naming its destination.
func TestErrQueueHearsAPortUnreachable(t *testing.T) {
	closed, err := Listen(SocketOptions{Addr: loopback4})
	require.NoError(t, err)
	dest := closed.Local
	unix.Close(closed.FD) // nothing listens there now
	s := listen(t, SocketOptions{Addr: loopback4, RecvErr: true})
	send(t, NewSendBatch(s.FD, s.Family, 1, nil), dest, "anyone?")
	buf, oob := make([]byte, MaxDatagram), make([]byte, 512)
	for deadline := time.Now().Add(time.Minute); ; {
		se, ok, err := ReadErrQueue(s.FD, buf, oob)
		require.NoError(t, err)
		if ok {
			assert.True(t, se.Refused(), "%v", se)
			assert.Equal(t, dest, se.Dest)
			return
		}
		require.True(t, time.Now().Before(deadline), "no ICMP error")
		time.Sleep(time.Millisecond)
	}
}

func FuzzParseExtendedErr(f *testing.F) {
	f.Add(errCmsg(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) { parseExtendedErr(oob) })
}
