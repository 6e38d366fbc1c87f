// Package client is pipecache's Go SDK.
//
// A Client keeps one KCP session to a pipecached server and is safe for concurrent use: every
// caller shares the session, so many requests are in flight at once, matched to their replies
// by request id, and their requests and ACKs share datagrams. The client sends heartbeats,
// notices a server that has stopped (an ICMP port unreachable: at once) or gone silent (a call
// that hears nothing for WithUnreachableAfter, 1 s), fails the requests in flight with
// ErrUnavailable, and redials with back-off in the background; while it cannot reconnect, calls
// fail with ErrUnavailable saying why instead of waiting for their contexts (reconnect.go).
//
// Transport. On Linux every session of the process (every Client, every node of every Cluster)
// is a conversation of one shared engine, package client/kcpnet: one I/O loop goroutine and a
// few UDP sockets, no goroutine per session; replies are matched on that loop (dispatch, which
// never blocks). Elsewhere, or built with the tag pipecache_udpsession, each session is a kcp-go
// UDPSession with a reader goroutine of its own, with the same behaviour (dial_udpsession.go).
//
//	c, err := client.Dial("127.0.0.1:7070") // or DialContext(ctx, addr)
//	if err != nil { ... }
//	defer c.Close()
//	if err := c.Ping(ctx); err != nil { ... }
//
// Every call takes a context: a cancelled one fails the call with an error wrapping
// context.Canceled, a deadline with one wrapping ErrTimeout and context.DeadlineExceeded.
// Cache is the interface Client and Cluster both satisfy; WithHook wraps every call for the
// application's metrics and tracing (hook.go), at no cost without hooks.
//
// A Cluster is the client of several nodes over one shared store (etcd): it learns the live
// nodes (StaticNodes, or etcdnodes.New from package client/etcdnodes), sends each key to one of them by rendezvous hashing
// (rendezvous.go), retries a request on the key's next node when its node does not answer,
// and moves subscriptions with their keys (cluster.go, cluster_sub.go).
//
//	cl, err := client.DialCluster(ctx, etcdnodes.New("etcd://10.0.0.9:2379/pipecache"))
//
// Callers: applications, cmd/pipecachectl and bench. Package client itself links no etcd, gRPC or protobuf (a test checks its dependencies):
// discovery through etcd is package client/etcdnodes, which an application imports only if it
// uses it.
package client
