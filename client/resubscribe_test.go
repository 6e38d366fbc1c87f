package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pipecache/pipecache/client"
)

// TestFailedResubscribeIsRetriedAndItsResyncComesFirst: after a new session (the old one's
// subscriptions gone), a re-subscribe that fails is retried until it is in place, and the
// resync marker comes before every event of the new session; the subscription then works.
func TestFailedResubscribeIsRetriedAndItsResyncComesFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := sub.Subscribe(ctx, "resub:k", client.WithValues())
	if err != nil {
		t.Fatal(err)
	}
	first := sub.Session()

	next := func() client.Event {
		select {
		case ev := <-s.C:
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
			return client.Event{}
		}
	}
	// Everything of the first session delivered: a sentinel set, and its event.
	if _, err := w.Set(ctx, "resub:k", []byte("sentinel")); err != nil {
		t.Fatal(err)
	}
	for ev := next(); string(ev.Value) != "sentinel"; ev = next() {
	}

	client.FailResubscribes(sub, 3)
	client.ForceNewSession(sub)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a writer that never stops while the subscription is being restored
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.Set(ctx, "resub:k", []byte(fmt.Sprint(i)))
			time.Sleep(2 * time.Millisecond)
		}
	})
	defer func() { close(stop); wg.Wait() }()

	if ev := next(); ev.Kind != client.EventResync {
		t.Fatalf("the first event after the session was lost is %v (%q), not the resync", ev.Kind, ev.Value)
	}
	if sub.Session() == first {
		t.Fatal("no new session")
	}
	for range 5 { // and the subscription is in place: sets keep coming
		if ev := next(); ev.Kind != client.EventSet {
			t.Fatalf("after the resync: %v", ev.Kind)
		}
	}
}
