package kcpnet

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/pipecache/pipecache/transport/dgram"
)

// Config configures an Engine. Zero values mean the defaults; the defaults are KCP's fast mode
// as the server uses it (PROTOCOL.md: nodelay 1, interval 10 ms, resend 2, nc 1, windows 256).
type Config struct {
	// Sockets is how many UDP sockets the engine opens per encryption key and address family;
	// conversations are spread over them round robin. Default 1.
	Sockets int
	// SocketBuffer is SO_RCVBUF and SO_SNDBUF of each socket. Default 4 MiB.
	SocketBuffer int
	// Batch is the most datagrams per recvmmsg and per sendmmsg. Default 64.
	Batch int
	// MTU is the largest datagram sent, encryption header included. Default 1400.
	MTU int
	// Window is KCP's send and receive window, in segments (DialOptions.Window overrides it per
	// conversation). Default 256.
	Window int
	// Interval is KCP's interval: while data is unacknowledged, a conversation is checked for
	// retransmission at least this often (and at its RTO). 10 ms to 5 s; default 10 ms.
	Interval time.Duration
	// AckDelay is how long the ACK of a datagram that completed a frame may wait for a datagram
	// of the conversation's own to ride on. Default Interval; negative: ACK at once, as kcp-go's
	// UDPSession does.
	AckDelay time.Duration
	// MaxSendQueue is how many segments may be queued or unacknowledged on one conversation
	// before Send refuses with ErrSendQueueFull. Default 8192 (about 11 MB).
	MaxSendQueue int
	// CompactAfter, if set, releases the KCP state of a conversation idle this long (nothing
	// unacknowledged, queued or held): about 20 KB of it, leaving about 0.4 KB; the next
	// datagram or Send rebuilds it (dgram.Save and dgram.Restore). For processes with many mostly idle
	// conversations (load tools); default 0: off.
	CompactAfter time.Duration
	// BlockingWait makes the loop sleep in epoll_wait on a thread of its own, as the server's
	// stage loops do, instead of in Go's netpoller (the default; see BenchmarkRoundTrip).
	BlockingWait bool
	// LockOSThread locks the loop's goroutine to its OS thread (with BlockingWait: with the
	// netpoller, every wake-up would then be a hand-off to that thread).
	LockOSThread bool
	// Logger receives the engine's rare log lines (socket errors). Default: discard.
	Logger *slog.Logger
}

const minMTU = 256

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Sockets, 1)
	def(&c.SocketBuffer, 4<<20)
	def(&c.Batch, 64)
	def(&c.MTU, kcp.IKCP_MTU_DEF)
	def(&c.Window, 256)
	def(&c.MaxSendQueue, 8192)
	if c.Interval <= 0 {
		c.Interval = 10 * time.Millisecond
	}
	if c.AckDelay == 0 {
		c.AckDelay = c.Interval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.MTU < minMTU || c.MTU > dgram.MaxDatagram:
		return fmt.Errorf("%w: MTU %d out of [%d, %d]", ErrBadConfig, c.MTU, minMTU, dgram.MaxDatagram)
	case c.Interval < 10*time.Millisecond || c.Interval > 5*time.Second:
		return fmt.Errorf("%w: Interval %v out of [10ms, 5s]", ErrBadConfig, c.Interval)
	case c.Sockets > 64:
		return fmt.Errorf("%w: %d sockets (64 at most)", ErrBadConfig, c.Sockets)
	}
	return nil
}

// Handler receives what a conversation delivers. Its methods run on the engine's loop
// goroutine, one call at a time for the whole engine: they must not block (no waiting on a
// lock held across I/O, no unbuffered channel send), or every conversation stalls. They may
// call Send and Close on any Conn. Handler.Frame is never called again after Close returns
// on the loop goroutine, nor after Handler.Closed.
type Handler interface {
	// Frame is called with each complete frame body in stream order: the bytes after the frame's
	// 4-byte length prefix (wire.Splitter.Next). body is valid only during the call.
	Frame(c *Conn, body []byte)
	// Closed is called exactly once when the conversation ends, with the reason: ErrClosed
	// after Close, or an error wrapping ErrRefused, ErrBadStream or ErrEngineClosed.
	Closed(c *Conn, reason error)
}

// HandlerFuncs adapts two functions to a Handler; a nil one is not called.
type HandlerFuncs struct {
	OnFrame func(c *Conn, body []byte)
	OnClose func(c *Conn, reason error)
}

// Frame implements Handler.
func (h HandlerFuncs) Frame(c *Conn, body []byte) {
	if h.OnFrame != nil {
		h.OnFrame(c, body)
	}
}

// Closed implements Handler.
func (h HandlerFuncs) Closed(c *Conn, reason error) {
	if h.OnClose != nil {
		h.OnClose(c, reason)
	}
}

// DialOptions configures one conversation.
type DialOptions struct {
	// Handler receives the conversation's frames and its end. Required.
	Handler Handler
	// Crypt, if set, encrypts every datagram as kcp-go's UDPSession does with the same
	// BlockCrypt (transport/dgram/crypt.go; the server's -crypt-key-file): kcp.NewAESGCMCrypt,
	// authenticated, or for a server started with -crypt-legacy-cfb kcp.NewAESBlockCrypt.
	// Conversations with the same Crypt value share sockets; each distinct value gets sockets of
	// its own, so reuse one BlockCrypt per key.

	Crypt kcp.BlockCrypt
	// Window overrides Config.Window for this conversation.
	Window int
	// LocalAddr, if valid, is the source address of the conversation's datagrams: its socket is
	// bound to it (the port is the kernel's choice). It must be of the peer's address family.
	// Conversations with the same LocalAddr (and Crypt) share sockets; each distinct address gets
	// Config.Sockets of its own. A load tool spreads conversations over several source addresses
	// with it (the server limits new conversations per source address; on Linux every address of
	// 127.0.0.0/8 is local). Default: an unbound socket (the kernel picks the source).
	LocalAddr netip.Addr
	// Ctx is the owner's per-conversation value, returned by Conn.Ctx.
	Ctx any
}

// Stats counts what an engine has done. Datagram counts are at the UDP level, in both
// directions, so that per round trip they show what the network carries.
type Stats struct {
	Conns   int // conversations open
	Sockets int // UDP sockets open

	DatagramsIn, DatagramsOut uint64
	BytesIn, BytesOut         uint64 // UDP payload bytes, encryption header included
	RecvCalls, SendCalls      uint64 // recvmmsg and sendmmsg system calls
	LoopWakes                 uint64 // loop iterations: returns from its wait
	EpollWaits                uint64 // epoll_wait calls on the engine's epoll fd (Go's netpoller makes its own)
	Wakeups                   uint64 // eventfd writes: another goroutine waking the loop
	Timers                    uint64 // conversation timers run (retransmission and ACK checks)

	AcksHeld        uint64 // ACK datagrams held to ride on a later one
	AcksPiggybacked uint64 // held ACKs that left in front of the conversation's data
	AcksAlone       uint64 // held ACKs that left on their own (AckDelay passed, or no room)
	Combined        uint64 // conversations flushed by a goroutine other than their sender (approximately)

	SendDropped uint64 // datagrams the kernel refused (EPERM, ENOBUFS, a full buffer...): lost, KCP resends
	Malformed   uint64 // datagrams too short, not decrypting, truncated, or rejected by KCP
	Unknown     uint64 // datagrams for no conversation of ours (closed, or from another address)
	Refusals    uint64 // ICMP port unreachables heard
	ICMPOther   uint64 // other ICMP errors heard (ignored: weather)

	Opened, Closed uint64 // conversations dialled and ended

	Compactions, Rebuilds uint64 // idle KCP states released (CompactAfter), and rebuilt
	Compacted             int    // conversations compacted now
}
