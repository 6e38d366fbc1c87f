package kcpnet

import (
	_ "unsafe" // for go:linkname

	"github.com/xtaci/kcp-go/v5"
)

// kcpFlush is kcp-go's unexported (*KCP).flush, which sends pending ACKs and every segment the
// window allows and returns the milliseconds until the next check is due (at most the
// interval). kcp-go exports only Update, which flushes once per interval, 10 ms at best: a
// request cannot wait 10 ms to leave. So Send's flush and the loop call flush directly, as the
// server's transport does (transport/kcpflush.go, the same one-function shim, for the same
// reason: the alternative is a wire-compatible KCP of our own).
//
// Pinned to kcp-go v5.6.72 (go.mod): TestKCPFlushShim fails if an upgrade changes what it links
// to.
//
//go:linkname kcpFlush github.com/xtaci/kcp-go/v5.(*KCP).flush
func kcpFlush(k *kcp.KCP, flushType kcp.FlushType) uint32
