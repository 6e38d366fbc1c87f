package dgram

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// SocketOptions says how Listen opens a socket.
type SocketOptions struct {
	// Addr is the address to bind. An IPv4 address (or an IPv4-mapped one) gives an IPv4
	// socket; any other, the invalid Addr included (every address), an IPv6 socket, which
	// also hears IPv4 peers unless the system says otherwise (net.ipv6.bindv6only). Port 0: an
	// ephemeral port.
	Addr netip.AddrPort
	// ReusePort sets SO_REUSEPORT, to share the port with other sockets that set it (shards).
	// Without it a second socket cannot bind the address: no SO_REUSEADDR, which for UDP
	// would let a second daemon take new peers away from the first.
	ReusePort bool
	// Buffer sets SO_RCVBUF and SO_SNDBUF (the FORCE variants first, which go past
	// net.core.[rw]mem_max for root; the capped ones otherwise); 0: the system's default.
	Buffer int
	// RecvErr sets IP_RECVERR (IPV6_RECVERR), so that ICMP errors for any destination reach
	// the socket's error queue (ReadErrQueue): an unconnected socket hears nothing otherwise.
	RecvErr bool
}

// Socket is a non-blocking UDP socket opened by Listen. Close it with unix.Close(FD).
type Socket struct {
	FD     int
	Family int            // unix.AF_INET or unix.AF_INET6
	Local  netip.AddrPort // the address bound, IPv4 unmapped
}

// Listen opens a non-blocking UDP socket as o says and binds it. Its errors say which step
// failed (the caller adds its own prefix).
func Listen(o SocketOptions) (Socket, error) {
	ip, family := o.Addr.Addr(), unix.AF_INET6
	if ip.Is4() || ip.Is4In6() {
		ip, family = ip.Unmap(), unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return Socket{}, os.NewSyscallError("socket", err)
	}
	s := Socket{FD: fd, Family: family}
	if s.Local, err = setup(fd, family, netip.AddrPortFrom(ip, o.Addr.Port()), &o); err != nil {
		unix.Close(fd)
		return Socket{}, err
	}
	return s, nil
}

func setup(fd, family int, ap netip.AddrPort, o *SocketOptions) (netip.AddrPort, error) {
	if o.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return netip.AddrPort{}, os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	if o.Buffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.Buffer) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.Buffer)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, o.Buffer) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.Buffer)
		}
	}
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	level, opt := unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		level, opt = unix.IPPROTO_IP, unix.IP_RECVERR
	}
	if o.RecvErr {
		if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
			return netip.AddrPort{}, os.NewSyscallError("setsockopt IP_RECVERR", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind %s: %w", ap, os.NewSyscallError("bind", err))
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

// SockErr is one entry of a socket's error queue.
type SockErr struct {
	Dest   netip.AddrPort // where the datagram that caused it was going
	Errno  unix.Errno
	Origin uint8 // unix.SO_EE_ORIGIN_*
}

// Refused reports whether the entry is an ICMP port unreachable (not a local error such as
// EMSGSIZE, nor another unreachable, which may pass).
func (e SockErr) Refused() bool {
	return e.Errno == unix.ECONNREFUSED && (e.Origin == unix.SO_EE_ORIGIN_ICMP || e.Origin == unix.SO_EE_ORIGIN_ICMP6)
}

func (e SockErr) String() string {
	return fmt.Sprintf("%v to %s (origin %d)", e.Errno, e.Dest, e.Origin)
}

// ReadErrQueue takes one entry from the error queue of fd, a socket opened with RecvErr
// (MSG_ERRQUEUE; man 7 ip, IP_RECVERR): the destination of the datagram that failed is
// msg_name, the error a sock_extended_err in a control message. buf takes the datagram (at
// most MaxDatagram bytes), oob the control messages (512 bytes will do). ok is false when the
// queue is empty.
func ReadErrQueue(fd int, buf, oob []byte) (e SockErr, ok bool, err error) {
	for {
		_, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return SockErr{}, false, nil
		default:
			return SockErr{}, false, os.NewSyscallError("recvmsg MSG_ERRQUEUE", err)
		}
		e.Errno, e.Origin = parseExtendedErr(oob[:oobn])
		if from != nil {
			e.Dest = sockaddrAddrPort(from)
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

// sizeofSockExtendedErr is sizeof(struct sock_extended_err) (x/sys has the type, not the size).
const sizeofSockExtendedErr = 16
