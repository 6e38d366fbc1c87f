package dgram

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr from <sys/socket.h>: x/sys has the syscall numbers for
// recvmmsg/sendmmsg but neither the type nor wrappers.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// batch is the buffers and headers of n datagrams, allocated once and reused for every call.
type batch struct {
	msgs  []mmsghdr
	iov   []unix.Iovec
	buf   []byte // len(msgs) * MaxDatagram
	addrs []unix.RawSockaddrInet6
}

func newBatch(n int) batch {
	b := batch{msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n),
		buf: make([]byte, n*MaxDatagram), addrs: make([]unix.RawSockaddrInet6, n)}
	for i := range n {
		b.iov[i].Base = &b.buf[i*MaxDatagram]
		b.iov[i].SetLen(MaxDatagram)
		b.msgs[i].hdr.Iov, b.msgs[i].hdr.Iovlen = &b.iov[i], 1
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	}
	return b
}

// raw returns the i-th address as bytes (struct sockaddr_in or sockaddr_in6).
func (b *batch) raw(i int) *[unix.SizeofSockaddrInet6]byte {
	return (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.addrs[i]))
}

// RecvBatch reads datagrams with recvmmsg into buffers allocated once. It belongs to one
// goroutine (the loop that reads); it may read from any number of sockets, one at a time.
type RecvBatch struct{ b batch }

// NewRecvBatch returns a RecvBatch of n datagrams.
func NewRecvBatch(n int) *RecvBatch { return &RecvBatch{b: newBatch(n)} }

// Len returns how many datagrams one Recv reads at most.
func (r *RecvBatch) Len() int { return len(r.b.msgs) }

// Recv reads up to a batch of datagrams from fd, replacing the previous batch. It returns how
// many; 0 with a nil error means the socket is drained (EAGAIN). An error is the socket's
// pending error (an earlier send's ICMP error, or with IP_RECVERR the sign that its error
// queue has an entry) or worse.
func (r *RecvBatch) Recv(fd int) (int, error) {
	b := &r.b
	for i := range b.msgs {
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.msgs[i].hdr.Flags = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])),
			uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		default:
			return 0, os.NewSyscallError("recvmmsg", errno)
		}
	}
}

// Datagram returns the i-th datagram of the last Recv and its sender, an IPv4 address unmapped
// whatever the socket's family. ok is false for a truncated datagram or an unknown address
// family. data is valid until the next Recv.
func (r *RecvBatch) Datagram(i int) (data []byte, from netip.AddrPort, ok bool) {
	b := &r.b
	if b.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, false
	}
	raw := b.raw(i)
	port := binary.BigEndian.Uint16(raw[2:4])
	switch b.addrs[i].Family {
	case unix.AF_INET:
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port)
	case unix.AF_INET6:
		from = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[8:24])).Unmap(), port)
	default:
		return nil, netip.AddrPort{}, false
	}
	return b.buf[i*MaxDatagram : i*MaxDatagram+int(b.msgs[i].n)], from, true
}

// SendBatch queues datagrams for one socket, sealed, and sends them with sendmmsg. It belongs
// to one goroutine at a time.
type SendBatch struct {
	b      batch
	fd     int
	family int
	seal   *Sealer
	n      int // datagrams queued
	sent   int // of those, sent already (by a Send that stopped on a full socket buffer)
}

// NewSendBatch returns a SendBatch of n datagrams for fd, a socket of family (unix.AF_INET or
// unix.AF_INET6), sealing with block (nil: in clear).
func NewSendBatch(fd, family, n int, block kcp.BlockCrypt) *SendBatch {
	return &SendBatch{b: newBatch(n), fd: fd, family: family, seal: NewSealer(block)}
}

// Len returns how many datagrams are queued and not sent yet.
func (s *SendBatch) Len() int { return s.n - s.sent }

// Queue copies the datagram a+b (b may be empty), sealed, into the batch for to. It reports
// false, queuing nothing, when the batch is full (Send, then queue again) or the datagram
// would be larger than MaxDatagram.
func (s *SendBatch) Queue(to netip.AddrPort, a, b []byte) bool {
	if s.n == len(s.b.msgs) || len(a)+len(b)+s.seal.overheadOf() > MaxDatagram {
		return false
	}
	i := s.n
	s.b.iov[i].SetLen(s.seal.Seal(s.b.buf[i*MaxDatagram:(i+1)*MaxDatagram], a, b))
	raw := s.b.raw(i)
	clear(raw[:])
	binary.BigEndian.PutUint16(raw[2:4], to.Port())
	if ip := to.Addr().Unmap(); s.family == unix.AF_INET && ip.Is4() {
		s.b.addrs[i].Family = unix.AF_INET
		a4 := ip.As4()
		copy(raw[4:8], a4[:])
		s.b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	} else { // to an IPv6 socket, an IPv4 address goes IPv4-mapped (As16)
		s.b.addrs[i].Family = unix.AF_INET6
		a16 := ip.As16()
		copy(raw[8:24], a16[:])
		s.b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	s.n++
	return true
}

// ErrWouldBlock means the socket's send buffer is full: Send again when it is writable
// (EPOLLOUT), or Discard what is left.
var ErrWouldBlock = errors.New("dgram: send buffer full")

// Sent is what one Send did.
type Sent struct {
	Datagrams int // sent
	Dropped   int // refused by the kernel, and dropped
	Calls     int // sendmmsg calls
}

// Send sends the queued datagrams with as few sendmmsg calls as possible. A datagram the kernel
// refuses for a reason that concerns only it (EPERM from a firewall, ECONNREFUSED reporting an
// earlier ICMP error, ENOBUFS, EMSGSIZE, an address of the wrong family) is dropped and
// counted: to KCP it is a lost datagram, resent at its RTO. On a full socket buffer it returns
// ErrWouldBlock and keeps the datagrams not sent.
func (s *SendBatch) Send() (Sent, error) {
	var r Sent
	for s.sent < s.n {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.b.msgs[s.sent])),
			uintptr(s.n-s.sent), unix.MSG_DONTWAIT, 0, 0)
		r.Calls++
		switch errno {
		case 0:
			s.sent += int(n)
			r.Datagrams += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return r, ErrWouldBlock
		default:
			s.sent++ // the first datagram of the call failed: skip it
			r.Dropped++
		}
	}
	s.n, s.sent = 0, 0
	return r, nil
}

// Discard drops the datagrams queued and not sent, and returns how many there were.
func (s *SendBatch) Discard() int {
	n := s.n - s.sent
	s.n, s.sent = 0, 0
	return n
}
