package tests

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pipecache/pipecache/stages"
	"github.com/pipecache/pipecache/transport"
)

// reportLatency merges per-caller latencies and reports their p50 and p99.
func reportLatency(b *testing.B, perCaller [][]time.Duration) {
	all := slices.Concat(perCaller...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}

// startBareIncoming runs the network stage alone (ping and echo) on a free loopback port until
// the benchmark ends.
func startBareIncoming(b *testing.B, cfg transport.Config) *stages.Incoming {
	cfg.Addr = "127.0.0.1:0"
	in, err := stages.NewIncoming(stages.IncomingConfig{Transport: cfg})
	if err != nil {
		b.Fatal(err)
	}
	if err := in.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Stop(context.Background()) })
	return in
}
