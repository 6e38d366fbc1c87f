package tests

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// BenchmarkCache drives an in-process daemon through the SDK with 50 sessions, one request in
// flight each, 100-byte values over 100,000 keys:
//
//   - get-hit: every key cached;
//   - get-miss: the store holds every key but the cache has a 1 MiB budget, so most gets read
//     through to the store;
//   - set: durable writes (acknowledged after the store's fsync), with group commit;
//   - set-no-group-commit: the same with the kill switch on, one fsync per write.
func BenchmarkCache(b *testing.B) {
	const sessions, keys = 50, 100_000
	for _, mode := range []string{"get-hit", "get-miss", "set", "set-no-group-commit"} {
		b.Run(fmt.Sprintf("%s/sessions=%d", mode, sessions), func(b *testing.B) {
			dir := b.TempDir()
			seedN(b, dir, keys)
			cfg := pipecached.Config{Store: dir, Logger: slog.New(slog.DiscardHandler),
				Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0"}}}
			if mode == "get-miss" {
				cfg.Cache.Memory = 1 << 20
			}
			cfg.Outgoing.NoGroupCommit = mode == "set-no-group-commit"
			d, err := pipecached.Start(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Stop(context.Background())
			clients := make([]*client.Client, sessions)
			for i := range clients {
				if clients[i], err = client.Dial(d.Addr().String(), client.WithHeartbeat(time.Second, time.Minute)); err != nil {
					b.Fatal(err)
				}
				defer clients[i].Close()
			}
			ctx := context.Background()
			if mode == "get-hit" { // warm the cache, every session a share of the keys
				var wg sync.WaitGroup
				for s, c := range clients {
					wg.Go(func() {
						for i := s; i < keys; i += sessions {
							if _, err := c.Get(ctx, fmt.Sprint("key:", i)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			value := make([]byte, 100)
			_, cs0 := d.Stats()
			lat := make([][]time.Duration, sessions)
			b.ResetTimer()
			var wg sync.WaitGroup
			for s, c := range clients {
				n := b.N / sessions
				if s < b.N%sessions {
					n++
				}
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(s), 1))
					lat[s] = make([]time.Duration, 0, n)
					for range n {
						key := fmt.Sprint("key:", rng.IntN(keys))
						t0 := time.Now()
						var err error
						if mode == "get-hit" || mode == "get-miss" {
							_, err = c.Get(ctx, key)
						} else {
							_, err = c.Set(ctx, key, value)
						}
						if err != nil {
							b.Error(err)
							return
						}
						lat[s] = append(lat[s], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportLatency(b, lat)
			_, cs := d.Stats()
			b.ReportMetric(float64(cs.Loads-cs0.Loads)/float64(b.N), "store-loads/op")
		})
	}
}

// seedN writes keys key:0..n-1 with 100-byte values straight into dir's store.
func seedN(tb testing.TB, dir string, n int) {
	s, err := nameservice.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	value := make([]byte, 100)
	ws := make([]nameservice.Write, 0, 10_000)
	for i := range n {
		ws = append(ws, nameservice.Write{Key: fmt.Sprint("key:", i), Record: nameservice.Record{Value: value, Version: uint64(i + 1)}})
		if len(ws) == cap(ws) || i == n-1 {
			if err := s.Commit(ws); err != nil {
				tb.Fatal(err)
			}
			ws = ws[:0]
		}
	}
}
