// Package transport is pipecached's network layer: a non-blocking UDP socket with batched
// receive and send (recvmmsg/sendmmsg), and every KCP conversation on it, all driven by one
// stage loop (the Incoming stage). There is no goroutine per connection and no lock: the Server
// and its Conns belong to the loop's goroutine.
//
// KCP is github.com/xtaci/kcp-go/v5's protocol object (kcp.KCP), driven from the loop: datagrams
// go in through Input, frames come out through Recv, replies go out through Send and leave in
// the same loop iteration: the loop's ReadyTimer flushes every conversation that has something
// to send (ACKs piggy-backed on replies) and then sends every datagram in one sendmmsg.
//
// The datagram layer under it (the socket and its batches, the encryption framing, ACK-only
// datagrams, and the kcp-go shim: the flush kcp-go does not export, idle state saved and
// restored) is package transport/dgram, which the SDK's engine (client/kcpnet) shares. What is
// the server's own is here: conversations keyed by address and conv, admission, the
// anti-amplification limit, idle compaction's spare engines, ACKs held for the reply.
//
// Conversations are keyed by (address, conv), so many clients behind one address work. Until
// the stage above marks a conversation established (a successful hello), it is pending: pending
// conversations are capped, created at a bounded rate and expire quickly, so a flood of forged
// datagrams cannot allocate much state. Until the peer has acknowledged something the server
// sent it (validate.go), the server sends it at most three times what it received, so it
// cannot be used to amplify traffic.
package transport
