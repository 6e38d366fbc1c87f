package client_test

import (
	"context"
	"sync"
	"testing"

	"github.com/pipecache/pipecache/client"
)

// TestHookSeesNearCacheHits: against a real daemon, the hook of a Get says whether the near
// cache answered it.
func TestHookSeesNearCacheHits(t *testing.T) {
	var mu sync.Mutex
	var near []bool
	hook := client.HookFunc(func(next client.ProcessFunc) client.ProcessFunc {
		return func(ctx context.Context, call *client.Call) error {
			err := next(ctx, call)
			if call.Op == "get" {
				mu.Lock()
				near = append(near, call.NearCache)
				mu.Unlock()
			}
			return err
		}
	})
	c, err := client.Dial(addr, client.WithNearCache(100, 0), client.WithHook(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	if _, err := c.Set(ctx, "test:near-hook", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Get(ctx, "test:near-hook"); err != nil {
			t.Fatal(err)
		}
	}
	hits := c.NearCacheStats().Hits
	mu.Lock()
	defer mu.Unlock()
	if len(near) != 2 || near[0] || near[1] != (hits == 1) {
		t.Errorf("hook saw near-cache answers %v, with %d near-cache hits", near, hits)
	}
}

// BenchmarkGet is a Get through a real daemon on loopback, without and with a hook: what a hook
// costs next to a round trip.
func BenchmarkGet(b *testing.B) {
	nop := client.HookFunc(func(next client.ProcessFunc) client.ProcessFunc { return next })
	for _, bc := range []struct {
		name string
		opts []client.Option
	}{{"no-hook", nil}, {"hook", []client.Option{client.WithHook(nop)}}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := client.Dial(addr, bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if _, err := c.Set(ctx, "bench:get", []byte("value")); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, "bench:get"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
