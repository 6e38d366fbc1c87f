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
)

func main() {
	fs := flag.NewFlagSet("pipecachectl", flag.ContinueOnError)
	addr := fs.String("addr", envOr("PIPECACHE_ADDR", "127.0.0.1:7070"), "server address (env PIPECACHE_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit of each command")
	token := fs.String("token", envOr("PIPECACHE_TOKEN", ""), "auth token (env PIPECACHE_TOKEN)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	c, err := client.Dial(*addr, client.WithToken(*token), client.WithName("pipecachectl"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
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

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func interactive(c *client.Client, timeout time.Duration, addr string, in io.Reader, out io.Writer) {
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
func watch(ctx context.Context, c *client.Client, target string, out io.Writer) error {
	var opts []client.SubOption
	if p, ok := strings.CutSuffix(target, "*"); ok {
		target, opts = p, append(opts, client.Prefix())
	}
	sub, err := c.Subscribe(ctx, target, append(opts, client.WithValues())...)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "watching %s (Ctrl-C to stop)\n", target)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			switch ev.Kind {
			case client.EventResync:
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
func run(c *client.Client, timeout time.Duration, args []string, out io.Writer) error {
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
	switch cmd {
	case "ping":
		if err := c.Ping(ctx); err != nil {
			return err
		}
		fmt.Fprintln(out, "PONG")
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
		stats, err := c.Stats(ctx)
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
