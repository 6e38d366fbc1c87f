package tests

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
	pipecached "github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
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
			d := startNotifyDaemon(b)
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

// BenchmarkPrefixFanOut changes 10,000 keys (each once per round, 16 writes in flight) while
// 100 subscriber sessions each subscribe to the prefix covering them: 1,000,000 pushes a round.
// It reports pushes delivered per second, the latency from a write's acknowledgment to each
// subscriber's receipt, and how many changes reached a subscriber coalesced (a slow subscriber
// gets the newest version of a key instead of every one) or were replaced by a resync.
//
//	go test -run XXX -bench PrefixFanOut -benchtime 1x ./tests/
func BenchmarkPrefixFanOut(b *testing.B) {
	const keys, subscribers, writers = 10_000, 100, 16
	d := startNotifyDaemon(b)
	ctx := context.Background()

	var mu sync.Mutex
	acked := make(map[uint64]time.Time, keys)
	type subState struct {
		mu      sync.Mutex
		last    map[string]uint64
		lat     []time.Duration
		pushes  int
		resyncs int
	}
	subs := make([]*subState, subscribers)
	for i := range subs {
		st := &subState{last: make(map[string]uint64, keys)}
		subs[i] = st
		c, err := client.Dial(d.Addr().String(), client.WithHeartbeat(time.Second, time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s, err := c.Subscribe(ctx, "p:", client.Prefix(), client.Buffer(1<<16))
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for ev := range s.C {
				now := time.Now()
				mu.Lock()
				at, ok := acked[ev.Version]
				mu.Unlock()
				st.mu.Lock()
				st.pushes++
				if ev.Kind == client.EventResync {
					st.resyncs++ // a real subscriber would re-read; here: stop checking it
				}
				st.last[ev.Key] = ev.Version
				if ok {
					st.lat = append(st.lat, now.Sub(at))
				}
				st.mu.Unlock()
			}
		}()
	}
	ws := make([]*client.Client, writers)
	for i := range ws {
		var err error
		if ws[i], err = client.Dial(d.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer ws[i].Close()
	}
	final := make(map[string]uint64, keys)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for k := w; k < keys; k += writers {
					key := fmt.Sprint("p:", k)
					v, err := ws[w].Set(ctx, key, []byte("v"))
					if err != nil {
						b.Error(err)
						return
					}
					at := time.Now()
					mu.Lock()
					acked[v], final[key] = at, v
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, st := range subs { // every subscriber has the final version of every key
			deadline := time.Now().Add(5 * time.Minute)
			for {
				st.mu.Lock()
				ok := st.resyncs > 0
				behind := 0
				if !ok {
					for k, v := range final {
						if st.last[k] < v {
							behind++
						}
					}
				}
				st.mu.Unlock()
				if ok || behind == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("a subscriber is missing %d keys' last change", behind)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	b.StopTimer()
	var lat []time.Duration
	pushes, resyncs := 0, 0
	for _, st := range subs {
		st.mu.Lock()
		lat = append(lat, st.lat...)
		pushes += st.pushes
		resyncs += st.resyncs
		st.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(pushes)/b.Elapsed().Seconds(), "pushes/s")
	b.ReportMetric(1-float64(pushes)/float64(keys*subscribers*b.N), "coalesced-frac")
	b.ReportMetric(float64(resyncs), "resyncs")
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkNearCacheGet reads 1,000 keys already in the SDK's near cache from parallel
// goroutines (hits: no network), next to the same reads without a near cache.
//
//	go test -run XXX -bench NearCacheGet ./tests/
func BenchmarkNearCacheGet(b *testing.B) {
	const keys = 1000
	d := startNotifyDaemon(b)
	ctx := context.Background()
	w, err := client.Dial(d.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for i := range keys {
		if _, err := w.Set(ctx, fmt.Sprint("n:", i), make([]byte, 100)); err != nil {
			b.Fatal(err)
		}
	}
	for _, near := range []bool{true, false} {
		b.Run(fmt.Sprintf("near=%v", near), func(b *testing.B) {
			var opts []client.Option
			if near {
				opts = append(opts, client.WithNearCache(keys, 0))
			}
			c, err := client.Dial(d.Addr().String(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for near && !c.NearCacheStats().Synced {
				time.Sleep(10 * time.Millisecond)
			}
			for i := range keys {
				if _, err := c.Get(ctx, fmt.Sprint("n:", i)); err != nil {
					b.Fatal(err)
				}
			}
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprint("n:", i)
			}
			hits := c.NearCacheStats().Hits
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := c.Get(ctx, names[i%keys]); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
			b.StopTimer()
			if near {
				b.ReportMetric(float64(c.NearCacheStats().Hits-hits)/float64(b.N), "hit-ratio")
			}
		})
	}
}

// startNotifyDaemon runs a quiet daemon on a free loopback port until the benchmark ends,
// admitting new conversations fast enough for hundreds of subscriber sessions.
func startNotifyDaemon(b *testing.B) *pipecached.Daemon {
	return testdaemon.Start(b, pipecached.Config{Logger: slog.New(slog.DiscardHandler),
		Incoming: stages.IncomingConfig{Transport: transport.Config{Addr: "127.0.0.1:0", MaxPending: 4096, PendingRate: 100_000}}})
}
