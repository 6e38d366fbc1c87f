package dgram

import (
	_ "unsafe" // for go:linkname

	"github.com/xtaci/kcp-go/v5"
)

// Flush is kcp-go's unexported (*KCP).flush: it sends pending ACKs and every segment the window
// allows, and returns the milliseconds until the next check is due.
//
//go:linkname Flush github.com/xtaci/kcp-go/v5.(*KCP).flush
func Flush(k *kcp.KCP, flushType kcp.FlushType) uint32
