package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Key inspection (PROTOCOL.md, "Finding and inspecting keys").

// TTL results that are not a duration.
const (
	NoTTL      time.Duration = -1 // the key exists and does not expire
	MissingKey time.Duration = -2 // there is no such key
)

// TTL returns key's remaining time to live (with the jitter the server added), NoTTL if it
// never expires, or MissingKey if it does not exist.
func (c *Client) TTL(ctx context.Context, key string) (time.Duration, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpTTL, Key: []byte(key)}, nil)
	if err != nil {
		return 0, err
	}
	switch d := r.Header.Delta; d {
	case -1, -2:
		return time.Duration(d), nil
	default:
		return time.Duration(d) * time.Millisecond, nil
	}
}

// Type says what key holds: "none" (no such key), "string" (a plain value), or "hash",
// "list" or "zset" (a built-in processor's encoding).
func (c *Client) Type(ctx context.Context, key string) (string, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpType, Key: []byte(key)}, nil)
	if err != nil {
		return "", err
	}
	return string(r.Value), nil
}

// Exists returns how many of keys exist (a key named twice counts twice, as in Redis); 1 to
// wire.MaxMGetKeys keys.
func (c *Client) Exists(ctx context.Context, keys ...string) (int, error) {
	if len(keys) == 0 || len(keys) > wire.MaxMGetKeys {
		return 0, fmt.Errorf("%w: exists takes 1 to %d keys, not %d", ErrBadRequest, wire.MaxMGetKeys, len(keys))
	}
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpExists}, wire.AppendKeys(nil, keys))
	if err != nil {
		return 0, err
	}
	return int(r.Header.Delta), nil
}

// Scan is one step of a scan of the server's keys, as Redis's SCAN: start with cursor "0",
// pass the returned cursor to the next step, stop when it is "0" again. match is a glob
// pattern ("" for every key), count the most keys one step returns (0: 10; at most 1000). A
// step may return fewer keys, none included, before the end. Every key that exists from the
// first step to the last is returned exactly once; a key written or deleted meanwhile may be
// returned or not (PROTOCOL.md, "scan").
func (c *Client) Scan(ctx context.Context, cursor, match string, count int) (keys []string, next string, err error) {
	args, err := json.Marshal(wire.ScanArgs{Cursor: cursor, Match: match, Count: count})
	if err != nil {
		return nil, "", err
	}
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpScan}, args)
	if err != nil {
		return nil, "", err
	}
	var rep wire.ScanReply
	if err := json.Unmarshal(r.Value, &rep); err != nil {
		return nil, "", fmt.Errorf("%w: scan reply: %w", ErrInternal, err)
	}
	return rep.Keys, rep.Cursor, nil
}
