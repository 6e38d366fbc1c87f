package client

import (
	"context"
	"strings"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// Info returns the server's state as Redis's INFO writes it (PROTOCOL.md, "The info reply"):
// text sections, each a "# Title" line then "name:value" lines. section names one (server,
// clients, memory, persistence, keyspace, stats, in any case); empty, every one. An unknown
// section fails with ErrBadRequest, whose message lists the sections; a server that predates
// info fails with ErrUnknownOp. ParseInfo reads the text.
func (c *Client) Info(ctx context.Context, section string) (string, error) {
	if c.hook != nil {
		return hooked(ctx, c.hook, &Call{Op: "info", Addr: c.addr}, func(ctx context.Context) (string, error) {
			return c.info(ctx, section)
		})
	}
	return c.info(ctx, section)
}

func (c *Client) info(ctx context.Context, section string) (string, error) {
	r, err := c.roundTrip(ctx, &wire.Header{Op: task.OpInfo}, []byte(section))
	if err != nil {
		return "", err
	}
	return string(r.Value), nil
}

// InfoSections are the sections Info may name, in the order the server writes them.
var InfoSections = wire.InfoSections

// ParseInfo reads an info reply into its sections, keyed by their names in lower case
// ("server"), each a map of its lines' names to their values. Lines that are not "name:value"
// are skipped.
func ParseInfo(text string) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur map[string]string
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if title, ok := strings.CutPrefix(line, "# "); ok {
			cur = map[string]string{}
			out[strings.ToLower(title)] = cur
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && cur != nil {
			cur[k] = v
		}
	}
	return out
}
