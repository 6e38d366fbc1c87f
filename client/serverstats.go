package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// ServerStats is a server's stats reply in full: its counters, and which build it runs.
type ServerStats struct {
	Version  string           // the server's build, as pipecached -version prints it ("" from a server that does not say)
	Counters map[string]int64 // what Stats returns
}

// ServerStats returns the server's counters and its build: the stats op asked for its text
// values too (PROTOCOL.md, "The stats reply").
func (c *Client) ServerStats(ctx context.Context) (ServerStats, error) {
	if c.hook != nil {
		return hooked(ctx, c.hook, &Call{Op: "stats", Addr: c.addr}, c.serverStats)
	}
	return c.serverStats(ctx)
}

func (c *Client) serverStats(ctx context.Context) (ServerStats, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpStats, Flags: task.FlagStatsText}, nil)
	if err != nil {
		return ServerStats{}, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &fields); err != nil {
		return ServerStats{}, fmt.Errorf("%w: stats: %w", ErrInternal, err)
	}
	st := ServerStats{Counters: make(map[string]int64, len(fields))}
	for k, v := range fields {
		var n int64
		if json.Unmarshal(v, &n) == nil {
			st.Counters[k] = n
			continue
		}
		var s string
		if k == "version" && json.Unmarshal(v, &s) == nil {
			st.Version = s
		} // a text value this client does not know: left out
	}
	return st, nil
}
