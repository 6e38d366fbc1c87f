package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pipecache/pipecache/client"
)

// startSubscribers opens cfg.Subscribers pipecache sessions subscribed to the workload's keys
// and counts the pushes they receive. Failed dials are retried as a session's are (DialPolicy's
// defaults); a subscriber that still cannot connect fails the run, since the pushes counted
// would be those of fewer subscribers than asked.
func startSubscribers(ctx context.Context, cfg Config) (*atomic.Int64, func(), error) {
	var n atomic.Int64
	if cfg.Subscribers == 0 {
		return &n, func() {}, nil
	}
	if cfg.Server != "pipecache" {
		return nil, nil, fmt.Errorf("subscribers: reverse notification is pipecache's, not %s's", cfg.Server)
	}
	clients, st, err := dialAll(DialPolicy{}, cfg.Subscribers, func(ctx context.Context, _ int) (*client.Client, error) {
		return client.DialContext(ctx, cfg.Addr, client.WithToken(cfg.Token), client.WithName("pipecache-bench-subscriber"))
	})
	var wg sync.WaitGroup
	stop := func() {
		closeAll(clients) // closes the subscription channels, ending the counters
		wg.Wait()
	}
	if err == nil && st.DialFailures > 0 {
		err = fmt.Errorf("subscribers: %d of %d could not connect", st.DialFailures, cfg.Subscribers)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	for _, c := range clients {
		sub, err := c.Subscribe(ctx, cfg.Prefix+"key:", client.Prefix())
		if err != nil {
			stop()
			return nil, nil, err
		}
		wg.Go(func() {
			for range sub.C {
				n.Add(1)
			}
		})
	}
	return &n, stop, nil
}
