package client

import (
	"context"

	"github.com/pipecache/pipecache/nameservice"
)

// EtcdNodes is the member set the nodes of a cluster keep in etcd: storeURL is the daemons'
// -store (etcd://host:2379[,host:2379...]/prefix). A node appears when it starts, and
// disappears when it stops or, if it dies, when its lease expires (its -member-ttl).
func EtcdNodes(storeURL string) Nodes { return etcdNodes(storeURL) }

type etcdNodes string

func (u etcdNodes) Watch(ctx context.Context, fn func([]string)) error {
	st, err := nameservice.OpenEtcd(string(u), 0, nil)
	if err != nil {
		return err
	}
	addrs, _, err := st.Members(ctx)
	if err != nil {
		st.Close()
		return err
	}
	fn(addrs)
	go func() {
		defer st.Close()
		st.WatchMembers(ctx, fn)
	}()
	return nil
}
