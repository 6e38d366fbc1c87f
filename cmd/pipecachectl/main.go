// Command pipecachectl talks to a pipecached server, like redis-cli or etcdctl.
//
//	pipecachectl [-addr host:port] [-token T] get KEY
//	pipecachectl set KEY VALUE [TTL]         (TTL like 30s, 5m)
//	pipecachectl add|replace KEY VALUE [TTL]
//	pipecachectl cas KEY VALUE VERSION [TTL]
//	pipecachectl del KEY
//	pipecachectl incr KEY [DELTA]
//	pipecachectl touch KEY TTL
//	pipecachectl mget KEY...
//	pipecachectl stats | ping
//	pipecachectl watch KEY|PREFIX*             (print every change until Ctrl-C; PREFIX* for a prefix)
//	pipecachectl                              (interactive: one command per line)
//
// With -cluster etcd://host:2379/prefix (or a comma-separated node list) it talks to a cluster
// through the SDK's Cluster, each key to the node that owns it, and has two more commands:
//
//	pipecachectl -cluster URL nodes           (the live nodes)
//	pipecachectl -cluster URL owner KEY       (the node that serves KEY)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/client/etcdnodes"
)

func main() {
	fs := flag.NewFlagSet("pipecachectl", flag.ContinueOnError)
	addr := fs.String("addr", envOr("PIPECACHE_ADDR", "127.0.0.1:7070"), "server address (env PIPECACHE_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit of each command")
	token := fs.String("token", envOr("PIPECACHE_TOKEN", ""), "auth token (env PIPECACHE_TOKEN)")
	cluster := fs.String("cluster", envOr("PIPECACHE_CLUSTER", ""), "a cluster instead of one server: etcd://host:2379/prefix or host:port,host:port,... (env PIPECACHE_CLUSTER)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	c, err := connect(*addr, *cluster, *timeout, client.WithToken(*token), client.WithName("pipecachectl"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	if *cluster != "" {
		*addr = *cluster
	}
	if fs.NArg() == 2 && fs.Arg(0) == "watch" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := watch(ctx, c, fs.Arg(1), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if fs.NArg() > 0 {
		if err := run(c, *timeout, fs.Args(), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	interactive(c, *timeout, *addr, os.Stdin, os.Stdout)
}

// server is what the commands use: a Client (one server) or a Cluster.
type server interface {
	Get(ctx context.Context, key string) (client.Item, error)
	MGet(ctx context.Context, keys ...string) (map[string]client.Item, error)
	Set(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	Add(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	Replace(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	CAS(ctx context.Context, key string, value []byte, version uint64, opts ...client.WriteOption) (uint64, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64) (int64, error)
	Touch(ctx context.Context, key string, ttl time.Duration) error
	Close() error
}

// connect dials the server at addr, or the cluster if one is named.
func connect(addr, cluster string, timeout time.Duration, opts ...client.Option) (server, error) {
	if cluster == "" {
		return client.Dial(addr, opts...)
	}
	nodes := client.StaticNodes(strings.Split(cluster, ",")...)
	if strings.HasPrefix(cluster, "etcd://") {
		nodes = etcdnodes.New(cluster)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return client.DialCluster(ctx, nodes, opts...)
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func interactive(c server, timeout time.Duration, addr string, in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 2<<20)
	for {
		fmt.Fprintf(out, "%s> ", addr)
		if !sc.Scan() {
			fmt.Fprintln(out)
			return
		}
		args := strings.Fields(sc.Text())
		if len(args) == 0 {
			continue
		}
		if args[0] == "quit" || args[0] == "exit" {
			return
		}
		if err := run(c, timeout, args, out); err != nil {
			fmt.Fprintf(out, "(error) %v\n", err)
		}
	}
}

// watch prints every change of key (or of every key under prefix, written "prefix*") until ctx
// ends.
func watch(ctx context.Context, c server, target string, out io.Writer) error {
	opts := []client.SubOption{client.WithValues()}
	if p, ok := strings.CutSuffix(target, "*"); ok {
		target, opts = p, append(opts, client.Prefix())
	}
	var events <-chan client.Event
	switch c := c.(type) {
	case *client.Client:
		sub, err := c.Subscribe(ctx, target, opts...)
		if err != nil {
			return err
		}
		events = sub.C
	case *client.Cluster:
		sub, err := c.Subscribe(ctx, target, opts...)
		if err != nil {
			return err
		}
		events = sub.C
	}
	fmt.Fprintf(out, "watching %s (Ctrl-C to stop)\n", target)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			switch ev.Kind {
			case client.EventResync:
				if ev.Key != "" {
					fmt.Fprintf(out, "[%d] resync: %s moved to another node; changes may have been missed\n", ev.Seq, ev.Key)
					continue
				}
				fmt.Fprintf(out, "[%d] resync: changes were missed; re-read what you watch\n", ev.Seq)
			case client.EventSet:
				fmt.Fprintf(out, "[%d] set %s = %s (version %d)\n", ev.Seq, ev.Key, ev.Value, ev.Version)
			default:
				fmt.Fprintf(out, "[%d] %s %s (version %d)\n", ev.Seq, ev.Kind, ev.Key, ev.Version)
			}
		}
	}
}

// run executes one command and prints its result.
func run(c server, timeout time.Duration, args []string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd, args := strings.ToLower(args[0]), args[1:]
	need := func(min, max int) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("%s: wrong number of arguments (see pipecachectl -h)", cmd)
		}
		return nil
	}
	ttl := func(i int) ([]client.WriteOption, error) {
		if len(args) <= i {
			return nil, nil
		}
		d, err := time.ParseDuration(args[i])
		if err != nil {
			return nil, fmt.Errorf("%s: TTL %q: %w", cmd, args[i], err)
		}
		return []client.WriteOption{client.WithTTL(d)}, nil
	}
	one, isOne := c.(*client.Client)
	cl, isCluster := c.(*client.Cluster)
	switch cmd {
	case "ping", "stats":
		if !isOne {
			return fmt.Errorf("%s: ask one node (-addr), not the cluster", cmd)
		}
	case "nodes", "owner":
		if !isCluster {
			return fmt.Errorf("%s: only with -cluster", cmd)
		}
	}
	switch cmd {
	case "ping":
		if err := one.Ping(ctx); err != nil {
			return err
		}
		fmt.Fprintln(out, "PONG")
	case "nodes":
		for _, n := range cl.Nodes() {
			fmt.Fprintln(out, n)
		}
	case "owner":
		if err := need(1, 1); err != nil {
			return err
		}
		fmt.Fprintln(out, cl.Owner(args[0]))
	case "get":
		if err := need(1, 1); err != nil {
			return err
		}
		it, err := c.Get(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n(version %d)\n", it.Value, it.Version)
	case "mget":
		if err := need(1, 1000); err != nil {
			return err
		}
		items, err := c.MGet(ctx, args...)
		if err != nil {
			return err
		}
		for i, k := range args {
			if it, ok := items[k]; ok {
				fmt.Fprintf(out, "%d) %s = %s (version %d)\n", i+1, k, it.Value, it.Version)
			} else {
				fmt.Fprintf(out, "%d) %s (not found)\n", i+1, k)
			}
		}
	case "set", "add", "replace":
		if err := need(2, 3); err != nil {
			return err
		}
		opts, err := ttl(2)
		if err != nil {
			return err
		}
		write := map[string]func(context.Context, string, []byte, ...client.WriteOption) (uint64, error){
			"set": c.Set, "add": c.Add, "replace": c.Replace}[cmd]
		v, err := write(ctx, args[0], []byte(args[1]), opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "OK (version %d)\n", v)
	case "cas":
		if err := need(3, 4); err != nil {
			return err
		}
		version, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("cas: version %q: %w", args[2], err)
		}
		opts, err := ttl(3)
		if err != nil {
			return err
		}
		v, err := c.CAS(ctx, args[0], []byte(args[1]), version, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "OK (version %d)\n", v)
	case "del", "delete":
		if err := need(1, 1); err != nil {
			return err
		}
		if err := c.Delete(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintln(out, "OK")
	case "incr", "decr":
		if err := need(1, 2); err != nil {
			return err
		}
		delta := int64(1)
		if len(args) == 2 {
			d, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: delta %q: %w", cmd, args[1], err)
			}
			delta = d
		}
		if cmd == "decr" {
			delta = -delta
		}
		n, err := c.Incr(ctx, args[0], delta)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "(integer) %d\n", n)
	case "touch":
		if err := need(2, 2); err != nil {
			return err
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return fmt.Errorf("touch: TTL %q: %w", args[1], err)
		}
		if err := c.Touch(ctx, args[0], d); err != nil {
			return err
		}
		fmt.Fprintln(out, "OK")
	case "stats":
		stats, err := one.Stats(ctx)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(stats))
		for k := range stats {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(out, "%s: %d\n", k, stats[k])
		}
	default:
		return fmt.Errorf("unknown command %q (try get, set, del, cas, incr, stats)", cmd)
	}
	return nil
}
