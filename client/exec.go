package client

import (
	"bytes"
	"context"
	"strings"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Exec runs the processor named proc on key, on the server that holds it, with args as its
// arguments, and returns the processor's result and the key's version after the call (0 if
// the key does not exist then). The processor runs atomically with every other operation on
// the key: a read-modify-write in one request, with no CAS to retry. If it changed the key, the
// change is durable in the store when Exec returns nil, and pushed to subscribers like a set.
//
// The built-in processors are hash, list and zset; package processor builds their arguments
// (processor.ZIncrArgs...) and decodes their results (processor.DecodeScore...), and
// PROCESSORS.md specifies both. Errors: ErrUnknownProcessor (no such processor on the server),
// ErrBadRequest (bad arguments), ErrWrongType (a value the processor cannot read), ErrTooLarge
// (the new value or the result over the server's -max-value), ErrOverBudget (over the
// server's -proc-budget or -proc-max-steps), ErrInternal (the processor failed or panicked):
// with each of them nothing changed. An Exec is not sent again after a lost session (it may
// have been applied): it fails with ErrUnavailable.
//
// With WithNearCache, an Exec invalidates the key's near-cache entry, as a write does.
func (c *Client) Exec(ctx context.Context, key, proc string, args []byte) (result []byte, version uint64, err error) {
	if c.hook != nil {
		k, p, a := strings.Clone(key), strings.Clone(proc), bytes.Clone(args)
		var v uint64
		res, err := hooked(ctx, c.hook, &Call{Op: "exec", Key: k, Addr: c.addr}, func(ctx context.Context) ([]byte, error) {
			var err error
			var r []byte
			r, v, err = c.exec(ctx, k, p, a)
			return r, err
		})
		return res, v, err
	}
	return c.exec(ctx, key, proc, args)
}

func (c *Client) exec(ctx context.Context, key, proc string, args []byte) ([]byte, uint64, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpExec, Key: []byte(key), Proc: []byte(proc)}, args)
	c.wrote(key, r, err)
	if err != nil {
		return nil, 0, err
	}
	return r.Value, r.Header.Ver, nil
}

// Exec runs a processor on key, on the node that owns it; see Client.Exec. It is retried on
// another node only if it was never sent.
func (cl *Cluster) Exec(ctx context.Context, key, proc string, args []byte) (result []byte, version uint64, err error) {
	run := func(ctx context.Context, key, proc string, args []byte, call *Call) error {
		return cl.do(ctx, key, false, call, func(ctx context.Context, c *Client) error {
			var err error
			result, version, err = c.exec(ctx, key, proc, args)
			return err
		})
	}
	if cl.hook != nil {
		k, p, a := strings.Clone(key), strings.Clone(proc), bytes.Clone(args)
		call := &Call{Op: "exec", Key: k}
		err = hookedErr(ctx, cl.hook, call, func(ctx context.Context) error { return run(ctx, k, p, a, call) })
		return result, version, err
	}
	err = run(ctx, key, proc, args, nil)
	return result, version, err
}
