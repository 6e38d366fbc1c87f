// Package wire is pipecache's wire protocol: how requests, replies and pushes are framed inside
// the KCP byte stream between a client and pipecached. The server's Incoming stage and the
// client SDK both import it; it imports nothing of pipecache's but package task (for the result
// codes, which are part of the protocol).
//
// A frame is
//
//	+----------------+----------------+---------------------+-------------------+
//	| length: uint32 | hlen: uint16   | header: hlen bytes  | value: the rest   |
//	| big-endian     | big-endian     | JSON object (UTF-8) | raw bytes         |
//	+----------------+----------------+---------------------+-------------------+
//
// where length counts every byte after itself (2 + hlen + len(value)). The value travels as raw
// bytes, so values of any content need no escaping. PROTOCOL.md at the repository root is the
// full specification, for writing a client in another language.
package wire
