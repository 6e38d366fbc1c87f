package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/pipecache/pipecache/client"
)

// runWatch prints every change of a key (or of every key under a prefix, written "prefix*")
// until ctx ends: Ctrl-C, which ends the watch without an error. Subscribing is bounded by
// -timeout; the watch is not.
func runWatch(ctx context.Context, e *env, args []string) (result, error) {
	target := args[0]
	opts := []client.SubOption{client.WithValues()}
	if p, ok := strings.CutSuffix(target, "*"); ok {
		target, opts = p, append(opts, client.Prefix())
	}
	events, unsubscribe, err := subscribe(ctx, e, target, opts)
	if err != nil {
		return nil, err
	}
	defer unsubscribe()
	notice := e.print.out
	if e.print.format != formatText {
		notice = e.print.errw // stdout holds only events
	}
	fmt.Fprintf(notice, "watching %s (Ctrl-C to stop)\n", quoteArg(args[0]))
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("watch %s: %w", args[0], client.ErrClosed)
			}
			e.print.print(eventResult(ev))
		}
	}
}

// subscribe subscribes to target on a Client or a Cluster, within -timeout, and returns the
// events and how to unsubscribe (also within -timeout).
func subscribe(ctx context.Context, e *env, target string, opts []client.SubOption) (<-chan client.Event, func(), error) {
	sctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	var events <-chan client.Event
	var unsub func(context.Context) error
	switch srv := e.srv.(type) {
	case *client.Client:
		sub, err := srv.Subscribe(sctx, target, opts...)
		if err != nil {
			return nil, nil, err
		}
		events, unsub = sub.C, sub.Unsubscribe
	case *client.Cluster:
		sub, err := srv.Subscribe(sctx, target, opts...)
		if err != nil {
			return nil, nil, err
		}
		events, unsub = sub.C, sub.Unsubscribe
	default:
		return nil, nil, fmt.Errorf("watch: cannot subscribe through %T", e.srv)
	}
	return events, func() {
		uctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		defer cancel()
		unsub(uctx) // best effort: the session's end drops the subscription anyway
	}, nil
}
