// Package kcpnet is the SDK's transport: KCP conversations over a few shared UDP sockets, all
// driven by one I/O loop per process, in the manner of the server's transport (package
// transport), for the client side, over the same datagram layer (transport/dgram).
//
// An Engine owns one loop goroutine, its epoll instance, and its UDP sockets (unconnected,
// shared by every conversation; one or a few per encryption key and address family). It drives
// kcp-go's low-level protocol object (kcp.KCP) for each conversation: datagrams are read in
// batches with recvmmsg and fed to KCP on the loop, complete frames are cut out of each stream
// (transport/wire.Splitter) and handed to the conversation's Handler on the loop, and
// retransmissions run from one timing wheel. There is no goroutine per conversation, no timer
// per conversation outside the wheel, and an idle conversation costs no CPU.
//
// Sending needs no wake-up of the loop: Conn.Send queues the frame in KCP and the calling
// goroutine flushes it at once, unless another goroutine is already sending, in which case that
// one takes the frame along (send combining): frames queued by many callers at the same time
// leave in one sendmmsg.
//
// ACKs: when a datagram completes a frame (a reply), its ACK is held for up to
// Config.AckDelay, and rides in front of the next datagram the conversation sends (the next
// request) instead of taking a datagram of its own; mid-frame (a large reply arriving) ACKs
// leave at once, so the peer's window keeps moving.
//
// Errors are weather: a datagram the kernel refuses to send (EPERM from a firewall, ENOBUFS) is
// lost, and KCP resends it. The one error that ends conversations is an ICMP port unreachable:
// the sockets set IP_RECVERR, the loop reads their error queues, and every conversation to the
// address that refused is closed at once with an error wrapping ErrRefused.
//
// What it shares with the server, and what not. Under both is one datagram layer, package
// transport/dgram, as gnet's client is built from its server's own netpoll and socket
// packages: the sockets and their recvmmsg/sendmmsg batches, the encryption framing (so the
// two cannot drift apart on the wire), the test for ACK-only datagrams, and the kcp-go shim
// (its unexported flush, and the state an idle conversation keeps). Above it each side has its
// own, because their work differs. The server is one stage loop on a locked thread that owns
// every conversation and is never called from elsewhere; its conversations are strangers to
// admit, cap and keep from amplifying traffic. The engine serves callers on any goroutine: its
// loop sleeps in Go's netpoller so that a reply wakes its caller on the same thread, and
// senders flush from their own goroutines (send combining), so its conversations are guarded
// by a mutex each and its send batches change hands under Engine.sendMu; on a full socket
// buffer it drops (KCP resends) where the server waits for EPOLLOUT; its sockets set
// IP_RECVERR to hear a refusal. It must not link the server: TestDependenciesStaySmall lists
// what it may import of pipecache's (transport/dgram, transport/wire, timer, task).
//
// Callers: package client (the SDK), load tools. Everything here is safe for concurrent use
// except where a method says otherwise; Handler methods run on the loop goroutine. Linux only:
// elsewhere NewEngine and Default return ErrUnsupported.
package kcpnet
