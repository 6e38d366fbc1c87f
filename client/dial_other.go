//go:build !linux

package client

import "github.com/xtaci/kcp-go/v5"

// dialKCP opens a KCP session to addr. Off Linux kcp-go sends with WriteTo, which a connected
// socket refuses, so the session keeps kcp-go's unconnected socket and a server that is not
// listening is noticed only when the hello times out.
func dialKCP(addr string, block kcp.BlockCrypt) (*kcp.UDPSession, error) {
	return kcp.DialWithOptions(addr, block, 0, 0)
}
