// Package dgram is pipecache's datagram layer, the one under both the server's transport
// (package transport, the Incoming stage) and the SDK's engine (client/kcpnet): what lies
// between a UDP socket and a kcp.KCP, whichever side of the conversation drives it.
//
//   - Sockets and batches (Linux): Listen opens a non-blocking UDP socket; RecvBatch reads
//     datagrams with recvmmsg and SendBatch sends them with sendmmsg, a batch per system call,
//     into and out of buffers allocated once. Addresses come out of a RecvBatch in one form
//     (IPv4 unmapped, whatever the socket's family) and a SendBatch writes them in its socket's
//     (an IPv4 address to an IPv6 socket goes as IPv4-mapped), so a conversation's address is
//     the same whether a dual-stack socket or an IPv4 one heard it. ReadErrQueue reads the
//     ICMP errors a socket opened with RecvErr collects.
//   - Encryption framing (crypt.go): a pre-shared key's datagram format, kcp-go's with a
//     BlockCrypt: Sealer seals, Open opens.
//   - ACK-only datagrams (OnlyACKs): both sides hold a datagram of nothing but ACKs back, to
//     ride in front of the next one the conversation sends.
//   - What pipecache takes from kcp-go beyond its exported API (flush.go, state.go): Flush,
//     kcp-go's unexported (*KCP).flush (kcp-go exports only Update, which flushes once per
//     interval, 10 ms at best: neither a reply nor a request can wait that long); Save and
//     Restore, an idle conversation's state, so that its KCP (about 20 KB: three rings of 64
//     segments and a 4 KB flush buffer, whatever the traffic) can be dropped or given to
//     another conversation and the idle one kept as a record of a few words, rebuilt when it
//     speaks.
//
// kcp-go offers neither of the last two, so Flush is linked by name and the state is read and
// written through its unexported fields, found by name with reflect. Both are pinned to kcp-go
// v5.6.72 (go.mod): TestFlushShim and TestLayout fail if an upgrade changes what they rely on,
// and Layout reports an error at run time (compaction is then off) rather than corrupt a
// conversation. The alternative, a wire-compatible KCP of our own, would mean maintaining a
// thousand lines of protocol that kcp-go maintains.
//
// What is not here is each side's own: the server's conversation table, admission and
// anti-amplification, its loop (a stage loop, one goroutine); the SDK's engine, its loop
// sleeping in Go's netpoller and its callers sending from their own goroutines. A RecvBatch,
// SendBatch or Sealer belongs to one goroutine at a time; the rest is safe for concurrent
// use, except that a KCP passed to Flush, Idle, Save, Restore or RTO must be held as the
// caller holds it for any other call into kcp-go.
//
// This package imports nothing of pipecache's: the SDK links it (client/kcpnet's
// TestDependenciesStaySmall), so it must never reach into the server.
package dgram
