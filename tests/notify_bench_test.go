package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// BenchmarkFanOut writes one hot key b.N times, one write at a time, with N subscriber sessions
// subscribed to it, and measures the latency from the write's acknowledgment to each
// subscriber's receipt of the change. ns/op is per write (each write produces N pushes).
//
//	go test -run XXX -bench FanOut -benchtime 200x ./tests/
func BenchmarkFanOut(b *testing.B) {
	for _, subscribers := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			d, err := stages.StartDaemon(stages.DaemonConfig{DataDir: b.TempDir(),
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
				Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0", MaxPending: 4096, PendingRate: 100_000}}})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Stop(context.Background())
			ctx := context.Background()
			writer, err := client.Dial(d.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer writer.Close()

			var mu sync.Mutex
			acked := map[uint64]time.Time{} // version -> when the write was acknowledged
			var lat []time.Duration
			received := make(chan struct{}, subscribers*4)
			var wg sync.WaitGroup
			for range subscribers {
				c, err := client.Dial(d.Addr().String(), client.WithHeartbeat(time.Second, time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				s, err := c.Subscribe(ctx, "hot")
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					for ev := range s.C {
						now := time.Now()
						mu.Lock()
						if at, ok := acked[ev.Version]; ok {
							lat = append(lat, now.Sub(at))
						}
						mu.Unlock()
						received <- struct{}{}
					}
				})
			}
			b.ResetTimer()
			for i := range b.N {
				mu.Lock() // hold the map until the ack time is recorded
				v, err := writer.Set(ctx, "hot", []byte(fmt.Sprint(i)))
				acked[v] = time.Now()
				mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				for range subscribers {
					select {
					case <-received:
					case <-time.After(time.Minute):
						b.Fatalf("write %d: pushes missing", i)
					}
				}
			}
			b.StopTimer()
			mu.Lock()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "pushes/s")
			}
			mu.Unlock()
		})
	}
}
