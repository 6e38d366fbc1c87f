// Package etcdnodes tells a client.Cluster which pipecached nodes are alive, from the member
// set the nodes keep in etcd (each daemon started with -store etcd://... registers itself
// there while it runs).
//
//	cl, err := client.DialCluster(ctx, etcdnodes.New("etcd://10.0.0.9:2379/pipecache"))
//
// It lives apart from package client so that an application talking to one node, or to a
// fixed list of nodes (client.StaticNodes), does not link etcd's client, gRPC and protobuf.
// Applications call it; nothing in pipecache does but its tools.
package etcdnodes
