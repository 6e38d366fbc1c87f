// Package transport is pipecached's network layer: non-blocking UDP sockets with batched
// receive and send (recvmmsg/sendmmsg), and every KCP conversation, all driven by one stage
// loop (the Incoming stage). There is no goroutine per connection and no lock: the Server and
// its Conns belong to the loop's goroutine.
//
// KCP is github.com/xtaci/kcp-go/v5's protocol object (kcp.KCP), driven from the loop: datagrams
// go in through Input, frames come out through Recv, replies go out through Send and leave in
// the same loop iteration: the loop's ReadyTimer flushes every conversation that has something
// to send (ACKs piggy-backed on replies) and then sends every datagram in one sendmmsg. kcp-go
// has no exported flush, so kcpflush.go links to its unexported (*KCP).flush; see there.
//
// Conversations are keyed by (address, conv), so many clients behind one address work. Until
// the stage above marks a conversation established (a successful hello), it is pending: pending
// conversations are capped, created at a bounded rate and expire quickly, so a flood of forged
// datagrams cannot allocate much state. Each reply is no larger than the request that caused it
// until then, so the server cannot be used to amplify traffic.
package transport
