package daemon_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/processor"
)

// A program that runs a daemon inside itself, with processors of its own and without
// pipecached's flags: Start, use it, Stop.
func Example_embed() {
	dir, err := os.MkdirTemp("", "pipecached")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	procs := processor.Default() // hash, list, zset; Register yours
	cfg := daemon.Config{Store: dir, Processors: procs, Logger: slog.New(slog.DiscardHandler)}
	cfg.Incoming.Transport.Addr = "127.0.0.1:0"
	ctx := context.Background()
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Stop(ctx)

	c, err := client.Dial(d.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Set(ctx, "greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	it, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(it.Value))
	// Output: hello
}
