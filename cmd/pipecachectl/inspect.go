package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pipecache/pipecache/client"
)

// Key inspection: scan, ttl, exists, type (PROTOCOL.md, "Finding and inspecting keys").

const scanDoc = `Start with cursor 0; each step prints the next cursor, then the keys it found; run it again
with that cursor until the cursor is 0. A step may find no key before the end. MATCH is a glob
(* ? [abc] [!abc] [a-z] {a,b}, \ escapes; quote it in a shell: 'user:*'), COUNT the most keys
a step returns (default 10, at most 1000). Every key that exists from the first step to the
last is printed exactly once.`

func runScan(ctx context.Context, e *env, args []string) (result, error) {
	cursor, match, count := args[0], "", 0
	for rest := args[1:]; len(rest) > 0; rest = rest[2:] {
		if len(rest) < 2 {
			return nil, usagef("scan: %s needs a value", rest[0])
		}
		switch strings.ToUpper(rest[0]) {
		case "MATCH":
			match = rest[1]
		case "COUNT":
			n, err := strconv.Atoi(rest[1])
			if err != nil || n < 1 {
				return nil, usagef("scan: COUNT %q is not a positive integer", rest[1])
			}
			count = n
		default:
			return nil, usagef("scan: %q is not MATCH or COUNT", rest[0])
		}
	}
	keys, next, err := e.srv.(*client.Client).Scan(ctx, cursor, match, count)
	if err != nil {
		return nil, err
	}
	return scanResult{cursor: next, keys: keys}, nil
}

type scanResult struct {
	cursor string
	keys   []string
}

func (r scanResult) text(w io.Writer) {
	fmt.Fprintf(w, "cursor %s\n", r.cursor)
	for i, k := range r.keys {
		fmt.Fprintf(w, "%d) %s\n", i+1, k)
	}
}

func (r scanResult) raw(w, note io.Writer) {
	fmt.Fprintln(note, "cursor "+r.cursor)
	for _, k := range r.keys {
		fmt.Fprintln(w, k)
	}
}

func (r scanResult) json() any { return map[string]any{"cursor": r.cursor, "keys": r.keys} }

// runTTL prints the remaining seconds as Redis's TTL (rounded), -1 for none, -2 for no key.
func runTTL(ctx context.Context, e *env, args []string) (result, error) {
	d, err := e.srv.(*client.Client).TTL(ctx, args[0])
	if err != nil {
		return nil, err
	}
	n := int64(d)
	if d >= 0 {
		n = (d.Milliseconds() + 500) / 1000
	}
	return intResult{key: args[0], n: n}, nil
}

func runExists(ctx context.Context, e *env, args []string) (result, error) {
	n, err := e.srv.(*client.Client).Exists(ctx, args...)
	if err != nil {
		return nil, err
	}
	return intResult{key: strings.Join(args, " "), n: int64(n)}, nil
}

func runType(ctx context.Context, e *env, args []string) (result, error) {
	t, err := e.srv.(*client.Client).Type(ctx, args[0])
	if err != nil {
		return nil, err
	}
	return lineResult{name: "type", value: t, extra: map[string]any{"key": args[0]}}, nil
}
