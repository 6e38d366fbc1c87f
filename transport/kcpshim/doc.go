// Package kcpshim is what pipecache takes from kcp-go beyond its exported API, in one place, for
// the server's transport and the SDK's engine (client/kcpnet) alike:
//
//   - Flush: kcp-go's unexported (*KCP).flush (kcp-go exports only Update, which flushes once
//     per interval, 10 ms at best: neither a reply nor a request can wait that long);
//   - Save and Reuse: an idle conversation's state, so that its KCP (about 20 KB: three rings
//     of 64 segments and a 4 KB flush buffer, whatever the traffic) can be given to another
//     conversation and the idle one kept as a record of a few words, rebuilt when it speaks.
//
// kcp-go offers neither, so Flush is linked by name and the state is read and written through
// its unexported fields, found by name with reflect. Both are pinned to kcp-go v5.6.72 (go.mod):
// TestFlushShim and TestLayout fail if an upgrade changes what they rely on, and Layout reports
// an error at run time (compaction is then off) rather than corrupt a conversation. The
// alternative, a wire-compatible KCP of our own, would mean maintaining a thousand lines of
// protocol that kcp-go maintains.
package kcpshim
