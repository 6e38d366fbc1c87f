package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// statsServer answers stats with the given JSON.
func statsServer(json string) fakeHandler {
	return sessionless(func(h *wire.Header, _ []byte) (*wire.Header, []byte) {
		if h.Op == task.OpStats {
			return &wire.Header{}, []byte(json)
		}
		return nil, nil
	})
}

// TestClusterPingAndStatsAskEveryNode: Stats sums the nodes' counters, NodeStats has them per
// node, Ping needs every node; a node that does not answer is named in the error while the
// others' counters are still returned.
func TestClusterPingAndStatsAskEveryNode(t *testing.T) {
	a := startFake(t, statsServer(`{"gets":1,"items":10,"store_unreachable":0}`))
	b := startFake(t, statsServer(`{"gets":2,"items":20,"store_unreachable":1}`))
	dead := startFake(t, silent)
	ctx := t.Context()

	cl, err := DialCluster(ctx, StaticNodes(a, b))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("Ping = %v", err)
	}
	sum, err := cl.Stats(ctx)
	if err != nil || sum["gets"] != 3 || sum["items"] != 30 || sum["store_unreachable"] != 1 {
		t.Errorf("Stats = %v, %v; want gets 3, items 30, store_unreachable 1", sum, err)
	}
	per, err := cl.NodeStats(ctx)
	if err != nil || len(per) != 2 || per[a]["gets"] != 1 || per[b]["gets"] != 2 {
		t.Errorf("NodeStats = %v, %v", per, err)
	}

	partial, err := DialCluster(ctx, StaticNodes(a, dead), WithDialTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	err = partial.Ping(ctx)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "node "+dead) || strings.Contains(err.Error(), "node "+a) {
		t.Errorf("Ping with a dead node = %v; want ErrUnavailable naming %s only", err, dead)
	}
	sum, err = partial.Stats(ctx)
	if err == nil || !strings.Contains(err.Error(), dead) || sum["gets"] != 1 {
		t.Errorf("Stats with a dead node = %v, %v; want the live node's counters and an error naming %s", sum, err, dead)
	}
}

func TestClusterPingWithoutNodesIsUnavailable(t *testing.T) {
	cl, err := DialCluster(t.Context(), nodesOnce{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping of an empty cluster = %v, want ErrUnavailable", err)
	}
	cl.Close()
	if _, err := cl.Stats(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats of a closed cluster = %v, want ErrClosed", err)
	}
}

// nodesOnce reports an empty node set once.
type nodesOnce struct{}

func (nodesOnce) Watch(_ context.Context, fn func([]string)) error {
	fn(nil)
	return nil
}
