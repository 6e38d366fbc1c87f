package etcdnodes_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/client/etcdnodes"
)

// Needs an etcd and daemons started with -store etcd://127.0.0.1:2379/demo, so it is compiled
// but not run.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := client.DialCluster(ctx, etcdnodes.New("etcd://127.0.0.1:2379/demo"))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	fmt.Println("live nodes:", cl.Nodes())
}
