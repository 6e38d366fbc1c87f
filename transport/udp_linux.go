package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr from <sys/socket.h>: x/sys has the syscall numbers for
// recvmmsg/sendmmsg but neither the type nor wrappers.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

const maxDatagram = 2048 // larger than any MTU we negotiate; bigger datagrams are truncated and dropped

// batchConn is a non-blocking UDP socket with preallocated batches for recvmmsg and sendmmsg.
// Owned by the loop goroutine.
type batchConn struct {
	fd     int
	family int
	local  netip.AddrPort

	rmsgs  []mmsghdr
	riov   []unix.Iovec
	rbuf   []byte // len(rmsgs) * maxDatagram
	raddrs []unix.RawSockaddrInet6

	smsgs  []mmsghdr
	siov   []unix.Iovec
	sbuf   []byte
	saddrs []unix.RawSockaddrInet6
	sn     int // datagrams queued in the send batch
	sent   int // datagrams of the batch already sent (a partial sendmmsg)
}

func listenUDP(addr string, reusePort bool, bufSize, batch int) (*batchConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen address %q: %w", addr, err)
	}
	ap := ua.AddrPort()
	family := unix.AF_INET6
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		family = unix.AF_INET
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	c := &batchConn{fd: fd, family: family}
	if err := c.setup(ap, reusePort, bufSize); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c.allocate(batch)
	return c, nil
}

func (c *batchConn) setup(ap netip.AddrPort, reusePort bool, bufSize int) error {
	// No SO_REUSEADDR: for UDP it would let a second daemon bind this address and take new
	// clients away from the first. Sharing a port is only ever asked for (SO_REUSEPORT shards).
	if reusePort {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	if bufSize > 0 {
		// The FORCE variants (root) go past net.core.[rw]mem_max; fall back to the capped ones.
		if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufSize) != nil {
			unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufSize)
		}
		if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bufSize) != nil {
			unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bufSize)
		}
	}
	if err := unix.Bind(c.fd, sockaddr(ap)); err != nil {
		return fmt.Errorf("transport: bind %s: %w", ap, os.NewSyscallError("bind", err))
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		c.local = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		c.local = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (c *batchConn) allocate(n int) {
	c.rmsgs, c.riov = make([]mmsghdr, n), make([]unix.Iovec, n)
	c.rbuf, c.raddrs = make([]byte, n*maxDatagram), make([]unix.RawSockaddrInet6, n)
	c.smsgs, c.siov = make([]mmsghdr, n), make([]unix.Iovec, n)
	c.sbuf, c.saddrs = make([]byte, n*maxDatagram), make([]unix.RawSockaddrInet6, n)
	for i := range n {
		c.riov[i].Base = &c.rbuf[i*maxDatagram]
		c.riov[i].Len = maxDatagram
		c.rmsgs[i].hdr.Iov, c.rmsgs[i].hdr.Iovlen = &c.riov[i], 1
		c.rmsgs[i].hdr.Name = (*byte)(unsafe.Pointer(&c.raddrs[i]))
		c.siov[i].Base = &c.sbuf[i*maxDatagram]
		c.smsgs[i].hdr.Iov, c.smsgs[i].hdr.Iovlen = &c.siov[i], 1
		c.smsgs[i].hdr.Name = (*byte)(unsafe.Pointer(&c.saddrs[i]))
	}
}

// recv reads up to a batch of datagrams. It returns how many; 0 with a nil error means the
// socket is drained (EAGAIN).
func (c *batchConn) recv() (int, error) {
	for i := range c.rmsgs {
		c.rmsgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		c.rmsgs[i].hdr.Flags = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.rmsgs[0])),
			uintptr(len(c.rmsgs)), unix.MSG_DONTWAIT, 0, 0)
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

// datagram returns the i-th received datagram and its sender. ok is false for a truncated
// datagram or an unknown address family.
func (c *batchConn) datagram(i int) (data []byte, from netip.AddrPort, ok bool) {
	m := &c.rmsgs[i]
	if m.hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, false
	}
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&c.raddrs[i]))
	port := binary.BigEndian.Uint16(raw[2:4])
	switch c.raddrs[i].Family {
	case unix.AF_INET:
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port)
	case unix.AF_INET6:
		from = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[8:24])), port)
	default:
		return nil, netip.AddrPort{}, false
	}
	return c.rbuf[i*maxDatagram : i*maxDatagram+int(m.n)], from, true
}

// queue copies a datagram into the send batch. It reports false when the batch is full (the
// caller flushes and retries, or drops the datagram: KCP retransmits).
func (c *batchConn) queue(to netip.AddrPort, data []byte) bool {
	if c.sn == len(c.smsgs) || len(data) > maxDatagram {
		return false
	}
	i := c.sn
	copy(c.sbuf[i*maxDatagram:], data)
	c.siov[i].Len = uint64(len(data))
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&c.saddrs[i]))
	clear(raw[:])
	binary.BigEndian.PutUint16(raw[2:4], to.Port())
	if to.Addr().Is4() {
		c.saddrs[i].Family = unix.AF_INET
		a := to.Addr().As4()
		copy(raw[4:8], a[:])
		c.smsgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	} else {
		c.saddrs[i].Family = unix.AF_INET6
		a := to.Addr().As16()
		copy(raw[8:24], a[:])
		c.smsgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	c.sn++
	return true
}

// errWouldBlock means the socket's send buffer is full: wait for EPOLLOUT.
var errWouldBlock = errors.New("transport: send buffer full")

// flush sends the queued datagrams with as few sendmmsg calls as possible. A datagram the
// kernel refuses for a reason that concerns only it (EPERM from a firewall, ECONNREFUSED from an
// earlier ICMP, ENOBUFS, EMSGSIZE) is dropped and counted: to KCP it is a lost datagram. It
// returns how many were sent and dropped, and errWouldBlock if some are still queued.
func (c *batchConn) flush() (sent, dropped int, err error) {
	for c.sent < c.sn {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.smsgs[c.sent])),
			uintptr(c.sn-c.sent), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			c.sent += int(n)
			sent += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return sent, dropped, errWouldBlock
		default:
			c.sent++ // the first datagram of the call failed: skip it
			dropped++
		}
	}
	c.sn, c.sent = 0, 0
	return sent, dropped, nil
}

func (c *batchConn) close() error {
	if err := unix.Close(c.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
