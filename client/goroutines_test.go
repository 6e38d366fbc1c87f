//go:build linux && !pipecache_udpsession

package client_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
)

// TestIdleClientHasNoGoroutine: on Linux a Client's session is a conversation of the shared
// kcpnet engine, and its heartbeat, reaper and acknowledgments are timers or started on demand:
// twenty idle Clients (with a silence timeout, so with a reaper) add no goroutine.
func TestIdleClientHasNoGoroutine(t *testing.T) {
	opts := []client.Option{client.WithHeartbeat(time.Hour, 2*time.Hour), client.WithSilenceTimeout(3 * time.Hour)}
	warm, err := client.Dial(addr, opts...) // the engine's loop, if no test started it yet
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	before := runtime.NumGoroutine()
	for range 20 {
		c, err := client.Dial(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Goroutines of the dials may still be ending (a hello's context watcher): poll, bounded.
	deadline := time.Now().Add(20 * time.Second)
	for n := runtime.NumGoroutine(); n > before+2; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for 20 idle clients, %d before them", n, before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
