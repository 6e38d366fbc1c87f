package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The near cache's state machine against the orders in which pushes and a write's reply may
// reach dispatch. The client is closed, so whatever the near cache does not serve locally
// fails with ErrClosed instead of reaching a server.

// nearWithEntry returns a near cache, confirmed complete, that holds key at version 5.
func nearWithEntry(t *testing.T, key string) *nearCache {
	t.Helper()
	n := closedClient(WithNearCache(10, time.Hour)).near
	n.synced(time.Now().UnixNano())
	n.mu.Lock()
	n.lru.Add(key, &nearEntry{value: []byte("five"), version: 5, valid: true, subbed: true, epoch: n.epoch})
	n.mu.Unlock()
	if it := localGet(t, n, key); it == nil || it.Version != 5 {
		t.Fatalf("the entry is not served: %+v", it)
	}
	return n
}

// localGet returns what n serves locally for key, or nil if a get would go to the server.
func localGet(t *testing.T, n *nearCache, key string) *Item {
	t.Helper()
	it, local, err := n.get(context.Background(), key)
	if !local {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("a get that went to the (closed) client: %v", err)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("local get: %v", err)
	}
	return &it
}

// TestNearCacheOwnWriteIsNotUndoneByAnOlderPush: the push of another client's earlier write may
// reach this client after the reply to its own write (SessionMgr pushes it when its loop gets
// to it; the reply goes straight to Incoming). The near cache must not then serve that older
// value: the client would not read its own write.
func TestNearCacheOwnWriteIsNotUndoneByAnOlderPush(t *testing.T) {
	n := nearWithEntry(t, "k")
	n.written("k", 7) // this client's write, answered: version 7
	if it := localGet(t, n, "k"); it != nil {
		t.Fatalf("served %+v right after this client's write: its own write must be read", it)
	}
	n.apply(EventSet, "k", 6, []byte("six")) // an earlier write's push, late
	if it := localGet(t, n, "k"); it != nil {
		t.Fatalf("served version %d after this client's write of version 7", it.Version)
	}
	n.apply(EventSet, "k", 7, []byte("seven")) // the write's own push
	if it := localGet(t, n, "k"); it == nil || it.Version != 7 || string(it.Value) != "seven" {
		t.Fatalf("after the write's own push: %+v, want version 7 served locally", it)
	}
}

// TestNearCacheOwnWriteOfUnknownVersionWaitsForTheServer: after a write whose version the
// client does not know (a delete, a failed write), no push makes the entry valid again: it
// cannot tell the pushes older than the write from the newer ones. Only a read does.
func TestNearCacheOwnWriteOfUnknownVersionWaitsForTheServer(t *testing.T) {
	n := nearWithEntry(t, "k")
	n.written("k", 0)
	for _, v := range []uint64{6, 9} {
		n.apply(EventSet, "k", v, []byte("pushed"))
		if it := localGet(t, n, "k"); it != nil {
			t.Fatalf("served version %d pushed after this client's delete", it.Version)
		}
	}
}
