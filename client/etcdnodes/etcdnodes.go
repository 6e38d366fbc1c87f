package etcdnodes

import (
	"context"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/nameservice"
)

// Nodes is the member set of a cluster's nodes in etcd; it implements client.Nodes. A node
// appears when it starts, and disappears when it stops or, if it dies, when its lease expires
// (its -member-ttl).
type Nodes struct {
	storeURL string
}

var _ client.Nodes = (*Nodes)(nil)

// New returns the member set kept in the etcd cluster named by storeURL, the daemons' -store
// (etcd://host:2379[,host:2379...]/prefix). Nothing is contacted until Watch.
func New(storeURL string) *Nodes { return &Nodes{storeURL: storeURL} }

// Watch reads the member set and calls fn with it, then follows etcd's watch of the member keys
// and calls fn with every new set until ctx ends. It returns once fn has been called, or with
// an error if the URL is not an etcd:// URL or etcd cannot be read.
func (n *Nodes) Watch(ctx context.Context, fn func(addrs []string)) error {
	st, err := nameservice.OpenEtcd(n.storeURL, 0, nil)
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
