package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pipecache/pipecache/client"
)

// usageError is a command line that cannot run as written (unknown command or flag, wrong
// number of arguments, an argument that does not parse): exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errInterrupted: Ctrl-C (SIGINT) cancelled the command.
var errInterrupted = errors.New("interrupted")

// needs says what a command runs against.
type needs int

const (
	needsNothing needs = iota // help: no server
	needsServer               // one node or the cluster
	needsNode                 // one node only (-addr)
	needsCluster              // the cluster only (-cluster)
)

// command is one pipecachectl command: its documentation, its arity, and what it does.
type command struct {
	name    string
	aliases []string
	args    string // the synopsis of its arguments
	summary string // one line, for the list
	doc     string // more, for help CMD (may be empty)
	min     int    // arguments, at least
	max     int    // and at most
	value   int    // the index of the VALUE argument that -x reads from stdin; -1 for the last
	needs   needs
	run     func(ctx context.Context, e *env, args []string) (result, error)
}

// env is what a command runs with.
type env struct {
	srv     server        // nil for a command that needs nothing
	timeout time.Duration // -timeout, for what a command bounds itself (watch)
	print   *printer      // for commands that stream (watch)
}

const ttlDoc = "TTL is seconds (30) or a Go duration (30s, 5m, 1h30m); 0 or absent: never expire."

// commands is every command, in the order help lists them.
var commands = []*command{
	{name: "get", args: "KEY", summary: "the value and version of KEY; (nil) if there is none",
		min: 1, max: 1, value: -1, needs: needsServer, run: runGet},
	{name: "mget", args: "KEY...", summary: "the values of several keys in one request",
		min: 1, max: 1000, value: -1, needs: needsServer, run: runMGet},
	{name: "set", args: "KEY VALUE [TTL]", summary: "store VALUE under KEY; prints the new version",
		doc: ttlDoc, min: 2, max: 3, value: 1, needs: needsServer, run: runSet},
	{name: "add", args: "KEY VALUE [TTL]", summary: "store VALUE only if KEY does not exist",
		doc: "Fails with \"key exists\" (exit 1) if it does. " + ttlDoc, min: 2, max: 3, value: 1, needs: needsServer, run: runAdd},
	{name: "replace", args: "KEY VALUE [TTL]", summary: "store VALUE only if KEY exists",
		doc: "Fails with \"not found\" (exit 1) if it does not. " + ttlDoc, min: 2, max: 3, value: 1, needs: needsServer, run: runReplace},
	{name: "cas", args: "KEY VALUE VERSION [TTL]", summary: "store VALUE only if KEY is still at VERSION",
		doc: "VERSION is what get or a write printed. Fails with \"version mismatch\" (exit 1) if the key changed since. " + ttlDoc,
		min: 3, max: 4, value: 1, needs: needsServer, run: runCAS},
	{name: "del", aliases: []string{"delete"}, args: "KEY", summary: "delete KEY; (nil) if there was none",
		min: 1, max: 1, value: -1, needs: needsServer, run: runDel},
	{name: "incr", args: "KEY [DELTA]", summary: "add DELTA (default 1) to the counter at KEY; prints its new value",
		doc: "The value must be a decimal integer; a missing key counts from 0, as Redis's INCR.",
		min: 1, max: 2, value: -1, needs: needsServer, run: runIncr},
	{name: "decr", args: "KEY [DELTA]", summary: "subtract DELTA (default 1) from the counter at KEY",
		min: 1, max: 2, value: -1, needs: needsServer, run: runDecr},
	{name: "touch", args: "KEY TTL", summary: "give KEY a new TTL without changing its value",
		doc: ttlDoc, min: 2, max: 2, value: -1, needs: needsServer, run: runTouch},
	{name: "exec", args: "KEY PROC [ARGS...]", summary: "run the processor PROC on KEY (hash, list, zset, or a custom daemon's)",
		doc: execDoc, min: 2, max: 1000, value: -1, needs: needsServer, run: runExec},
	{name: "watch", args: "KEY|PREFIX*", summary: "print every change of KEY (or of every key under PREFIX) until Ctrl-C",
		doc: "Runs until Ctrl-C (interactively: back to the prompt), not bounded by -timeout. Quote the * in a shell: watch 'room:*'.",
		min: 1, max: 1, value: -1, needs: needsServer, run: runWatch},
	{name: "scan", args: "CURSOR [MATCH PATTERN] [COUNT N]", summary: "one step of a scan of the server's keys: the next cursor, then keys",
		doc: scanDoc, min: 1, max: 5, value: -1, needs: needsNode, run: runScan},
	{name: "ttl", args: "KEY", summary: "KEY's remaining time to live in seconds; -1 none, -2 no such key",
		min: 1, max: 1, value: -1, needs: needsNode, run: runTTL},
	{name: "exists", args: "KEY...", summary: "how many of the keys exist",
		min: 1, max: 1000, value: -1, needs: needsNode, run: runExists},
	{name: "type", args: "KEY", summary: "what KEY holds: string, hash, list, zset, or none",
		min: 1, max: 1, value: -1, needs: needsNode, run: runType},
	{name: "stats", summary: "the server's build (version) and counters", min: 0, max: 0, value: -1, needs: needsNode, run: runStats},
	{name: "info", args: "[SECTION]", summary: "the server's state as Redis's INFO: server, clients, memory, persistence, keyspace, stats",
		doc: infoDoc, min: 0, max: 1, value: -1, needs: needsNode, run: runInfo},
	{name: "ping", summary: "check that the server answers (PONG)", min: 0, max: 0, value: -1, needs: needsNode, run: runPing},
	{name: "slowlog", summary: "the server's slowest recent requests (op, key, time, client)", doc: slowlogDoc,
		min: 0, max: 0, value: -1, needs: needsNode, run: runSlowLog},
	{name: "nodes", summary: "the cluster's live nodes (with -cluster)", min: 0, max: 0, value: -1, needs: needsCluster, run: runNodes},
	{name: "owner", args: "KEY", summary: "the node that serves KEY (with -cluster)", min: 1, max: 1, value: -1, needs: needsCluster, run: runOwner},
	{name: "help", args: "[COMMAND]", summary: "list the commands, or describe one", min: 0, max: 1, value: -1, needs: needsNothing}, // run: runHelp, set by init (it reads this table)
}

// lookup finds a command by name or alias, in any case.
func lookup(name string) *command {
	name = strings.ToLower(name)
	for _, c := range commands {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// parseTTL reads a TTL: plain seconds ("30") or a Go duration ("30s", "1h30m"); never negative.
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > math.MaxInt64/uint64(time.Second) {
			return 0, usagef("TTL %q: too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, usagef("TTL %q: not seconds (30) nor a duration (30s, 5m)", s)
	case d < 0:
		return 0, usagef("TTL %q: negative", s)
	}
	return d, nil
}

// ttlOption returns the write option for the TTL at args[i], if there is one.
func ttlOption(args []string, i int) ([]client.WriteOption, error) {
	if len(args) <= i {
		return nil, nil
	}
	d, err := parseTTL(args[i])
	if err != nil {
		return nil, err
	}
	return []client.WriteOption{client.WithTTL(d)}, nil
}

func runGet(ctx context.Context, e *env, args []string) (result, error) {
	it, err := e.srv.Get(ctx, args[0])
	if errors.Is(err, client.ErrNotFound) {
		return itemResult{key: args[0]}, nil
	}
	if err != nil {
		return nil, err
	}
	it.Key = args[0]
	return itemResult{key: args[0], item: it, found: true}, nil
}

func runMGet(ctx context.Context, e *env, args []string) (result, error) {
	items, err := e.srv.MGet(ctx, args...)
	if err != nil {
		return nil, err
	}
	for k, it := range items {
		it.Key = k
		items[k] = it
	}
	return itemsResult{keys: args, items: items}, nil
}

func runSet(ctx context.Context, e *env, args []string) (result, error) {
	return runWrite(ctx, args, e.srv.Set)
}

func runAdd(ctx context.Context, e *env, args []string) (result, error) {
	return runWrite(ctx, args, e.srv.Add)
}

func runReplace(ctx context.Context, e *env, args []string) (result, error) {
	return runWrite(ctx, args, e.srv.Replace)
}

// runWrite runs set, add or replace (write): KEY VALUE [TTL].
func runWrite(ctx context.Context, args []string,
	write func(context.Context, string, []byte, ...client.WriteOption) (uint64, error)) (result, error) {
	opts, err := ttlOption(args, 2)
	if err != nil {
		return nil, err
	}
	v, err := write(ctx, args[0], []byte(args[1]), opts...)
	if err != nil {
		return nil, err
	}
	return versionResult{key: args[0], version: v}, nil
}

func runCAS(ctx context.Context, e *env, args []string) (result, error) {
	version, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return nil, usagef("cas: VERSION %q is not a version number", args[2])
	}
	opts, err := ttlOption(args, 3)
	if err != nil {
		return nil, err
	}
	v, err := e.srv.CAS(ctx, args[0], []byte(args[1]), version, opts...)
	if err != nil {
		return nil, err
	}
	return versionResult{key: args[0], version: v}, nil
}

func runDel(ctx context.Context, e *env, args []string) (result, error) {
	err := e.srv.Delete(ctx, args[0])
	if errors.Is(err, client.ErrNotFound) {
		return okResult{key: args[0]}, nil
	}
	if err != nil {
		return nil, err
	}
	return okResult{key: args[0], found: true}, nil
}

func runIncr(ctx context.Context, e *env, args []string) (result, error) {
	return incr(ctx, e, args, "incr")
}

func runDecr(ctx context.Context, e *env, args []string) (result, error) {
	return incr(ctx, e, args, "decr")
}

// incr runs incr and decr (cmd): KEY [DELTA].
func incr(ctx context.Context, e *env, args []string, cmd string) (result, error) {
	delta := int64(1)
	if len(args) == 2 {
		d, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || (cmd == "decr" && d == math.MinInt64) {
			return nil, usagef("%s: DELTA %q is not a 64-bit integer", cmd, args[1])
		}
		delta = d
	}
	if cmd == "decr" {
		delta = -delta
	}
	n, err := e.srv.Incr(ctx, args[0], delta)
	if err != nil {
		return nil, err
	}
	return intResult{key: args[0], n: n}, nil
}

func runTouch(ctx context.Context, e *env, args []string) (result, error) {
	d, err := parseTTL(args[1])
	if err != nil {
		return nil, err
	}
	if err := e.srv.Touch(ctx, args[0], d); err != nil {
		return nil, err
	}
	return okResult{key: args[0], found: true}, nil
}

func runStats(ctx context.Context, e *env, _ []string) (result, error) {
	stats, err := e.srv.(*client.Client).ServerStats(ctx)
	if err != nil {
		return nil, err
	}
	return statsResult(stats), nil
}

func runPing(ctx context.Context, e *env, _ []string) (result, error) {
	if err := e.srv.(*client.Client).Ping(ctx); err != nil {
		return nil, err
	}
	return lineResult{name: "pong", value: "PONG"}, nil
}

func runNodes(_ context.Context, e *env, _ []string) (result, error) {
	return listResult{name: "nodes", lines: e.srv.(*client.Cluster).Nodes()}, nil
}

func runOwner(_ context.Context, e *env, args []string) (result, error) {
	owner := e.srv.(*client.Cluster).Owner(args[0])
	return lineResult{name: "owner", value: owner, extra: map[string]any{"key": args[0]}}, nil
}
