package transport

import (
	_ "unsafe" // for go:linkname

	"github.com/xtaci/kcp-go/v5"
)

// kcpFlush is kcp-go's unexported (*KCP).flush, which sends pending ACKs and every segment the
// window allows. kcp-go exports only Update, which flushes once per interval (10 ms at best):
// a cache cannot add 10 ms to each reply. So the Incoming loop calls flush directly at the end
// of the iteration that produced replies.
//
// This is pinned to kcp-go v5.6.72 (go.mod): the signature is checked by the tests
// (TestKCPFlushShim), so an upgrade that changes it fails the build or the tests, not
// production. The alternative, a wire-compatible KCP engine of our own, would duplicate ~1000
// lines of a protocol kcp-go maintains; we chose the one-function shim.
//
//go:linkname kcpFlush github.com/xtaci/kcp-go/v5.(*KCP).flush
func kcpFlush(k *kcp.KCP, flushType kcp.FlushType) uint32
