package etcdnodes

import (
	"context"
	"testing"
	"time"
)

func TestWatchFailsClearlyWithoutCallingFn(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"not a URL", "::"},
		{"wrong scheme", "http://127.0.0.1:2379/p"},
		{"no host", "etcd:///p"},
		{"nothing listening", "etcd://127.0.0.1:1/p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			called := false
			err := New(tc.url).Watch(ctx, func([]string) { called = true })
			if err == nil {
				t.Fatalf("Watch(%q) = nil, want an error", tc.url)
			}
			if called {
				t.Errorf("Watch(%q) called fn although it failed", tc.url)
			}
		})
	}
}
