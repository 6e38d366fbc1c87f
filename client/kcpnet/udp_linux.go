//go:build linux

package kcpnet

import (
	"encoding/binary"
	"fmt"
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

// socket is one unconnected UDP socket shared by conversations of one encryption key and
// address family.
type socket struct {
	idx    int // in Engine.socks; its epoll token is idx+1
	fd     int
	family int
	local  netip.AddrPort
	crypt  kcp.BlockCrypt
	kcpMTU int // KCP's MTU here: Config.MTU less the encryption header

	loopOut *sendBatch // datagrams produced on the loop goroutine; loop only
	out     *sendBatch // datagrams produced by senders; holder of Engine.sendMu only
	closed  bool       // set under Engine.sendMu, with the loop stopped: no more sends
}

// openSocket creates a non-blocking UDP socket bound to an ephemeral port of local (if valid;
// else of every address), with IP_RECVERR so that ICMP errors for any destination reach its
// error queue (an unconnected socket hears nothing otherwise).
func openSocket(family, bufSize int, local netip.Addr) (int, netip.AddrPort, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, netip.AddrPort{}, os.NewSyscallError("socket", err)
	}
	bound, err := setupSocket(fd, family, bufSize, local)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	return fd, bound, nil
}

func setupSocket(fd, family, bufSize int, local netip.Addr) (netip.AddrPort, error) {
	// The FORCE variants (root) go past net.core.[rw]mem_max; fall back to the capped ones.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufSize)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bufSize)
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if local.IsValid() {
		sa = &unix.SockaddrInet4{Addr: local.As4()}
	}
	level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{}
		if local.IsValid() {
			sa = &unix.SockaddrInet6{Addr: local.As16()}
		}
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return netip.AddrPort{}, os.NewSyscallError("setsockopt IP_RECVERR", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		if local.IsValid() {
			return netip.AddrPort{}, fmt.Errorf("local address %s: %w", local, os.NewSyscallError("bind", err))
		}
		return netip.AddrPort{}, os.NewSyscallError("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, os.NewSyscallError("getsockname", err)
	}
	return sockaddrAddrPort(got), nil
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// recvBatch holds preallocated buffers and headers for recvmmsg. Loop goroutine only.
type recvBatch struct {
	msgs  []mmsghdr
	iov   []unix.Iovec
	buf   []byte // len(msgs) * maxDatagram
	addrs []unix.RawSockaddrInet6
}

func newRecvBatch(n int) *recvBatch {
	b := &recvBatch{msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n),
		buf: make([]byte, n*maxDatagram), addrs: make([]unix.RawSockaddrInet6, n)}
	for i := range n {
		b.iov[i].Base = &b.buf[i*maxDatagram]
		b.iov[i].SetLen(maxDatagram)
		b.msgs[i].hdr.Iov, b.msgs[i].hdr.Iovlen = &b.iov[i], 1
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	}
	return b
}

// recv reads up to a batch of datagrams from fd. It returns how many; 0 with a nil error means
// the socket is drained (EAGAIN). An error is a pending socket error (an ICMP error reported
// through the error queue) or worse.
func (b *recvBatch) recv(fd int) (int, error) {
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

// datagram returns the i-th received datagram and its sender; ok is false for a truncated one
// or an unknown address family.
func (b *recvBatch) datagram(i int) (data []byte, from netip.AddrPort, ok bool) {
	m := &b.msgs[i]
	if m.hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, false
	}
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.addrs[i]))
	port := binary.BigEndian.Uint16(raw[2:4])
	switch b.addrs[i].Family {
	case unix.AF_INET:
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port)
	case unix.AF_INET6:
		from = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[8:24])).Unmap(), port)
	default:
		return nil, netip.AddrPort{}, false
	}
	return b.buf[i*maxDatagram : i*maxDatagram+int(m.n)], from, true
}

// sendBatch holds datagrams for one sendmmsg on one socket. It belongs to one goroutine at a
// time (see socket.loopOut and socket.out).
type sendBatch struct {
	fd    int
	msgs  []mmsghdr
	iov   []unix.Iovec
	buf   []byte
	addrs []unix.RawSockaddrInet6
	n     int // datagrams queued
	seal  *sealer
	st    *counters
}

func newSendBatch(fd, n int, block kcp.BlockCrypt, st *counters) *sendBatch {
	b := &sendBatch{fd: fd, msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n),
		buf: make([]byte, n*maxDatagram), addrs: make([]unix.RawSockaddrInet6, n),
		seal: newSealer(block), st: st}
	for i := range n {
		b.iov[i].Base = &b.buf[i*maxDatagram]
		b.msgs[i].hdr.Iov, b.msgs[i].hdr.Iovlen = &b.iov[i], 1
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	}
	return b
}

// queue adds the datagram a+b (b may be empty) for to, sending the batch first if it is full.
// The caller keeps a+b within the socket's KCP MTU.
func (b *sendBatch) queue(to netip.AddrPort, a, p []byte) {
	if b.n == len(b.msgs) {
		b.flush()
	}
	i := b.n
	n := b.seal.seal(b.buf[i*maxDatagram:(i+1)*maxDatagram], a, p)
	b.iov[i].SetLen(n)
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.addrs[i]))
	clear(raw[:])
	binary.BigEndian.PutUint16(raw[2:4], to.Port())
	if to.Addr().Is4() {
		b.addrs[i].Family = unix.AF_INET
		a4 := to.Addr().As4()
		copy(raw[4:8], a4[:])
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	} else {
		b.addrs[i].Family = unix.AF_INET6
		a16 := to.Addr().As16()
		copy(raw[8:24], a16[:])
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	b.st.bytesOut.Add(uint64(n))
	b.n++
}

// flush sends the queued datagrams. A datagram the kernel refuses for a reason of its own
// (EPERM from a firewall, ECONNREFUSED reporting an earlier ICMP error, ENOBUFS, EMSGSIZE) is
// dropped and counted, and so is the rest of the batch on a full socket buffer (EAGAIN): to KCP
// they are lost datagrams, resent at their RTO.
func (b *sendBatch) flush() {
	for sent := 0; sent < b.n; {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.msgs[sent])),
			uintptr(b.n-sent), unix.MSG_DONTWAIT, 0, 0)
		b.st.sendCalls.Add(1)
		switch errno {
		case 0:
			sent += int(n)
			b.st.datagramsOut.Add(uint64(n))
		case unix.EINTR:
		case unix.EAGAIN:
			b.st.sendDropped.Add(uint64(b.n - sent))
			sent = b.n
		default:
			sent++ // the first datagram of the call failed: skip it
			b.st.sendDropped.Add(1)
		}
	}
	b.n = 0
}

// sockErr is one entry of a socket's error queue.
type sockErr struct {
	dest   netip.AddrPort // where the datagram that caused it was going
	errno  unix.Errno
	origin uint8 // unix.SO_EE_ORIGIN_*
}

// readErrQueue takes one entry from fd's error queue (MSG_ERRQUEUE; man 7 ip, IP_RECVERR): the
// destination of the datagram that failed is msg_name, the error a sock_extended_err in a
// control message. ok is false when the queue is empty.
func readErrQueue(fd int, buf, oob []byte) (e sockErr, ok bool, err error) {
	for {
		_, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return sockErr{}, false, nil
		default:
			return sockErr{}, false, os.NewSyscallError("recvmsg MSG_ERRQUEUE", err)
		}
		e.errno, e.origin = parseExtendedErr(oob[:oobn])
		if from != nil {
			e.dest = sockaddrAddrPort(from)
		}
		return e, true, nil
	}
}

// parseExtendedErr finds the sock_extended_err in a control message buffer and returns its
// errno and origin (0, 0 if there is none).
func parseExtendedErr(oob []byte) (unix.Errno, uint8) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if (v4 || v6) && len(m.Data) >= sizeofSockExtendedErr {
			// struct sock_extended_err: ee_errno (u32, host order), ee_origin (u8), ...
			return unix.Errno(binary.NativeEndian.Uint32(m.Data)), m.Data[4]
		}
	}
	return 0, 0
}

// refused reports whether an error queue entry is an ICMP port unreachable (not a local error
// such as EMSGSIZE, nor another unreachable, which may pass).
func (e sockErr) refused() bool {
	return e.errno == unix.ECONNREFUSED && (e.origin == unix.SO_EE_ORIGIN_ICMP || e.origin == unix.SO_EE_ORIGIN_ICMP6)
}

func (e sockErr) String() string {
	return fmt.Sprintf("%v to %s (origin %d)", e.errno, e.dest, e.origin)
}

// sizeofSockExtendedErr is sizeof(struct sock_extended_err) (x/sys has the type, not the size).
const sizeofSockExtendedErr = 16
