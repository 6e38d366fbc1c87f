package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// SlowRequest is one entry of a server's slow log: a request that took at least the server's
// -slowlog threshold from its decoding to its reply (op, key, duration, client address...).
type SlowRequest = wire.SlowRequest

// SlowLog returns the server's slow log, newest first: the most recent requests (of every
// client) that took at least its -slowlog threshold (pipecached -slowlog-len of them at most).
// A server that predates the slow log fails it with ErrUnknownOp.
func (c *Client) SlowLog(ctx context.Context) ([]SlowRequest, error) {
	if c.hook != nil {
		return hooked(ctx, c.hook, &Call{Op: "slowlog", Addr: c.addr}, c.slowLog)
	}
	return c.slowLog(ctx)
}

func (c *Client) slowLog(ctx context.Context) ([]SlowRequest, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpSlowLog}, nil)
	if err != nil {
		return nil, err
	}
	var out []SlowRequest
	if err := json.Unmarshal(r.Value, &out); err != nil {
		return nil, fmt.Errorf("%w: slowlog: %w", ErrInternal, err)
	}
	return out, nil
}
