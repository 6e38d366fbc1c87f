package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/client/etcdnodes"
)

// server is what the commands use: a Client (one server) or a Cluster.
type server interface {
	Get(ctx context.Context, key string) (client.Item, error)
	MGet(ctx context.Context, keys ...string) (map[string]client.Item, error)
	Set(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	Add(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	Replace(ctx context.Context, key string, value []byte, opts ...client.WriteOption) (uint64, error)
	CAS(ctx context.Context, key string, value []byte, version uint64, opts ...client.WriteOption) (uint64, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64, opts ...client.IncrOption) (int64, error)
	Touch(ctx context.Context, key string, ttl time.Duration) error
	Exec(ctx context.Context, key, proc string, args []byte) ([]byte, uint64, error)
	Close() error
}

// ctl runs commands against one server or cluster, connected on the first command that needs
// it (so that help needs none), and prints their results. One goroutine uses it.
type ctl struct {
	cfg   config
	print *printer
	srv   server // nil until connected
}

func (c *ctl) close() {
	if c.srv != nil {
		c.srv.Close()
	}
}

// exec runs one command (args[0] its name) and prints its result. The command is bounded by
// -timeout (watch only while it subscribes), and ends early when ctx ends (Ctrl-C).
func (c *ctl) exec(ctx context.Context, args []string) error {
	cmd := lookup(args[0])
	if cmd == nil {
		return usagef("unknown command %q (help lists the commands)", args[0])
	}
	rest := args[1:]
	if len(rest) < cmd.min || len(rest) > cmd.max {
		return usagef("%s: wrong number of arguments: %s (help %s)", cmd.name, synopsis(cmd), cmd.name)
	}
	if err := c.fits(cmd); err != nil {
		return err
	}
	e := &env{print: c.print, timeout: c.cfg.timeout}
	if cmd.needs != needsNothing {
		srv, err := c.connect(ctx)
		if err != nil {
			return c.explain(ctx, err)
		}
		e.srv = srv
	}
	if cmd.name != "watch" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	r, err := cmd.run(ctx, e, rest)
	if err != nil {
		return c.explain(ctx, err)
	}
	if r != nil {
		c.print.print(r)
	}
	return nil
}

// fits checks that cmd can run against what the flags name: ping and stats need one node,
// nodes and owner a cluster.
func (c *ctl) fits(cmd *command) error {
	switch {
	case cmd.needs == needsNode && c.cfg.cluster != "":
		return usagef("%s: ask one node (-addr), not the cluster", cmd.name)
	case cmd.needs == needsCluster && c.cfg.cluster == "":
		return usagef("%s: only with -cluster (or PIPECACHE_CLUSTER)", cmd.name)
	}
	return nil
}

// explain turns an error that Ctrl-C caused into errInterrupted.
func (c *ctl) explain(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return errInterrupted
	}
	return err
}

// connect returns the server, dialling it if this is the first command that needs it (or the
// last dial failed). The dial is bounded by -timeout; Ctrl-C stops waiting for it.
func (c *ctl) connect(ctx context.Context) (server, error) {
	if c.srv != nil {
		return c.srv, nil
	}
	type dialed struct {
		srv server
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		srv, err := c.dial()
		ch <- dialed{srv, err}
	}()
	select {
	case d := <-ch:
		if d.err != nil {
			return nil, d.err
		}
		c.srv = d.srv
		return c.srv, nil
	case <-ctx.Done():
		go func() { // the dial ends within -timeout: close what it opened
			if d := <-ch; d.err == nil {
				d.srv.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (c *ctl) dial() (server, error) {
	opts := []client.Option{client.WithToken(c.cfg.token), client.WithName("pipecachectl"),
		client.WithDialTimeout(c.cfg.timeout)}
	if c.cfg.keyFile != "" {
		key, err := client.ReadKeyFile(c.cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-crypt-key-file: %w", err)
		}
		if c.cfg.legacyCFB {
			opts = append(opts, client.WithLegacyCryptKey(key))
		} else {
			opts = append(opts, client.WithCryptKey(key))
		}

	}
	if c.cfg.cluster == "" {
		return client.Dial(c.cfg.addr, opts...)
	}
	nodes := client.StaticNodes(strings.Split(c.cfg.cluster, ",")...)
	if strings.HasPrefix(c.cfg.cluster, "etcd://") {
		nodes = etcdnodes.New(c.cfg.cluster)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	cl, err := client.DialCluster(ctx, nodes, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.cfg.cluster, err)
	}
	return cl, nil
}

// exitCode is the exit code for a command's outcome: 0, 1 (it failed) or 2 (usage).
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}
