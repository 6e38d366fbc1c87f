package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pipecache/pipecache/client"
)

// The examples talk to a pipecached at addr (in these tests, one started by TestMain; in an
// application, something like "127.0.0.1:7070").

func ExampleDial() {
	c, err := client.Dial(addr) // one session, shared by every goroutine
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected")
	// Output: connected
}

func ExampleDialContext() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, addr, client.WithName("example"))
	if err != nil {
		// errors.Is(err, context.Canceled) if ctx was cancelled; errors.Is(err,
		// client.ErrTimeout) if nothing answered in time.
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.Session() != 0)
	// Output: true
}

func ExampleClient_Get() {
	c, err := client.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	_, err = c.Get(ctx, "example:get:absent")
	fmt.Println(errors.Is(err, client.ErrNotFound))

	if _, err := c.Set(ctx, "example:get:user", []byte("alice"), client.WithTTL(time.Hour)); err != nil {
		log.Fatal(err)
	}
	it, err := c.Get(ctx, "example:get:user")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(it.Value))
	// Output:
	// true
	// alice
}

func ExampleClient_Set() {
	c, err := client.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	v1, err := c.Set(ctx, "example:set", []byte("one")) // durable in the store once it returns
	if err != nil {
		log.Fatal(err)
	}
	v2, err := c.Set(ctx, "example:set", []byte("two"), client.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v2 > v1) // every change gets a new, higher version
	// Output: true
}

func ExampleClient_CAS() {
	c, err := client.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	ver, err := c.Set(ctx, "example:cas", []byte("draft"))
	if err != nil {
		log.Fatal(err)
	}
	// Only if nobody changed it since version ver:
	if _, err := c.CAS(ctx, "example:cas", []byte("final"), ver); err != nil {
		log.Fatal(err)
	}
	// A second writer still holding ver loses:
	_, err = c.CAS(ctx, "example:cas", []byte("other"), ver)
	fmt.Println(errors.Is(err, client.ErrVersionMismatch))

	it, err := c.Get(ctx, "example:cas")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(it.Value))
	// Output:
	// true
	// final
}

func ExampleClient_Subscribe() {
	c, err := client.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	sub, err := c.Subscribe(ctx, "example:room:", client.Prefix(), client.WithValues())
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe(ctx)

	if _, err := c.Set(ctx, "example:room:1", []byte("hi")); err != nil {
		log.Fatal(err)
	}
	if err := c.Delete(ctx, "example:room:1"); err != nil {
		log.Fatal(err)
	}
	for range 2 {
		select {
		case ev := <-sub.C:
			switch ev.Kind {
			case client.EventSet, client.EventDelete, client.EventExpire:
				fmt.Println(ev.Kind, ev.Key, string(ev.Value))
			case client.EventResync:
				fmt.Println("changes were missed: re-read the keys")
			}
		case <-time.After(10 * time.Second):
			fmt.Println("no event")
		}
	}
	// Output:
	// set example:room:1 hi
	// delete example:room:1
}

func ExampleWithNearCache() {
	// Up to 10,000 values kept in the client, kept current by pushes; served while the push
	// stream was confirmed complete within the default bound (three heartbeats).
	c, err := client.Dial(addr, client.WithNearCache(10_000, 0))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Set(ctx, "example:near", []byte("cached")); err != nil {
		log.Fatal(err)
	}
	for range 2 { // the first read goes to the server and subscribes; the second is local
		it, err := c.Get(ctx, "example:near")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(it.Value))
	}
	fmt.Println("local reads:", c.NearCacheStats().Hits)
	// Output:
	// cached
	// cached
	// local reads: 1
}

func ExampleDialCluster() {
	ctx := context.Background()
	// A fixed node list; with etcd, use etcdnodes.New("etcd://host:2379/prefix") from package
	// client/etcdnodes, which follows the nodes as they come and go.
	cl, err := client.DialCluster(ctx, client.StaticNodes(addr, addr2))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	for _, k := range []string{"example:player:1", "example:player:2", "example:player:3"} {
		if _, err := cl.Set(ctx, k, []byte("score of "+k)); err != nil { // to the key's node
			log.Fatal(err)
		}
	}
	items, err := cl.MGet(ctx, "example:player:1", "example:player:2", "example:player:3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(cl.Nodes()), "nodes,", len(items), "items")
	fmt.Println(string(items["example:player:2"].Value))
	// Output:
	// 2 nodes, 3 items
	// score of example:player:2
}

// countKeys works with a Client or a Cluster.
func countKeys(ctx context.Context, kv client.Cache, keys ...string) (int, error) {
	items, err := kv.MGet(ctx, keys...)
	return len(items), err
}

func ExampleCache() {
	ctx := context.Background()
	c, err := client.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	cl, err := client.DialCluster(ctx, client.StaticNodes(addr, addr2))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	if _, err := c.Set(ctx, "example:cache", []byte("x")); err != nil {
		log.Fatal(err)
	}
	n, err := countKeys(ctx, c, "example:cache", "example:cache:absent")
	fmt.Println(n, err)
	if _, err := cl.Set(ctx, "example:cache", []byte("x")); err != nil {
		log.Fatal(err)
	}
	n, err = countKeys(ctx, cl, "example:cache", "example:cache:absent")
	fmt.Println(n, err)
	// Output:
	// 1 <nil>
	// 1 <nil>
}

// logCalls is a Hook that prints each call's op, key and outcome; a real one would observe a
// latency histogram, or start and end a tracing span.
type logCalls struct{}

func (logCalls) Process(next client.ProcessFunc) client.ProcessFunc {
	return func(ctx context.Context, call *client.Call) error {
		start := time.Now()
		err := next(ctx, call)
		_ = time.Since(start) // the call's duration
		switch {
		case err == nil:
			fmt.Println(call.Op, call.Key, "ok")
		case errors.Is(err, client.ErrNotFound):
			fmt.Println(call.Op, call.Key, "not found")
		default:
			fmt.Println(call.Op, call.Key, "failed")
		}
		return err
	}
}

func ExampleWithHook() {
	c, err := client.Dial(addr, client.WithHook(logCalls{}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	c.Set(ctx, "example:hook", []byte("v"))
	c.Get(ctx, "example:hook")
	c.Get(ctx, "example:hook:absent")
	// Output:
	// set example:hook ok
	// get example:hook ok
	// get example:hook:absent not found
}
