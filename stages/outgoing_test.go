package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages/loop"
	"github.com/pipecache/pipecache/task"
)

// pickyStore is a store that fails any commit holding a key that starts with "poison" (as a
// real store may fail a whole batch for one write), or every commit while down.
type pickyStore struct {
	nameservice.Store
	mu      sync.Mutex
	down    bool
	commits int
}

func (s *pickyStore) Commit(ws []nameservice.Write) error {
	s.mu.Lock()
	s.commits++
	down := s.down
	s.mu.Unlock()
	if down {
		return fmt.Errorf("%w: no route to the store", nameservice.ErrUnavailable)
	}
	for _, w := range ws {
		if strings.HasPrefix(w.Key, "poison") {
			return errors.New("store: this batch holds a write it cannot take")
		}
	}
	return s.Store.Commit(ws)
}

// runOutgoing sends writes through an Outgoing stage over store and returns the completions
// by key.
func runOutgoing(t *testing.T, store nameservice.Store, keys []string) map[string]*task.Task {
	t.Helper()
	done := newTestQueue(t, "done", 1024)
	var mu sync.Mutex
	got := map[string]*task.Task{}
	all := make(chan struct{})
	startLoop(t, loop.Config{Name: "cacheprc"}, done, func(tk *task.Task) {
		mu.Lock()
		defer mu.Unlock()
		got[string(tk.Key)] = tk
		if len(got) == len(keys) {
			close(all)
		}
	})
	o, err := NewOutgoing(OutgoingConfig{Logger: testLogger(t)}, store, done)
	require.NoError(t, err)
	for i, k := range keys { // queued before the loop starts: they make one group
		st := task.Get()
		st.Op, st.Version = task.OpStore, uint64(i+1)
		st.Key = append(st.Key, k...)
		st.Value = append(st.Value, "v"...)
		pushRetry(t, o.Requests(), st)
	}
	require.NoError(t, o.Loop().Start())
	t.Cleanup(func() { o.Stop(context.Background()) })
	select {
	case <-all:
	case <-testCtx(t).Done():
		t.Fatal("not every write completed")
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// TestOneBadWriteNeverFailsItsGroup: a write the store refuses fails alone; the others in its
// group commit are committed and acknowledged.
func TestOneBadWriteNeverFailsItsGroup(t *testing.T) {
	bolt, err := nameservice.Open(t.TempDir())
	require.NoError(t, err)
	defer bolt.Close()
	store := &pickyStore{Store: bolt}
	keys := []string{"a", "poison", "b", "", "c", strings.Repeat("k", 40_000), "d"}
	got := runOutgoing(t, store, keys)
	for _, k := range []string{"a", "b", "c", "d"} {
		assert.Equal(t, task.CodeOK, got[k].Code, "write %q: %v", k, got[k].Err)
		_, ok, err := bolt.Get(k, 0)
		require.NoError(t, err)
		assert.True(t, ok, "%q acknowledged but not stored", k)
	}
	assert.Equal(t, task.CodeUnavailable, got["poison"].Code, "the write the store failed")
	assert.Equal(t, task.CodeBadRequest, got[""].Code, "an empty key is the request's fault, not the store's")
	assert.Equal(t, task.CodeBadRequest, got[strings.Repeat("k", 40_000)].Code)
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 1+len(keys), store.commits, "one group, then each write alone")
}

// TestUnreachableStoreFailsTheGroupWithoutRetries: when the store cannot be reached, retrying
// each write alone would only multiply the wait.
func TestUnreachableStoreFailsTheGroupWithoutRetries(t *testing.T) {
	bolt, err := nameservice.Open(t.TempDir())
	require.NoError(t, err)
	defer bolt.Close()
	store := &pickyStore{Store: bolt, down: true}
	got := runOutgoing(t, store, []string{"a", "b", "c"})
	for _, tk := range got {
		assert.Equal(t, task.CodeUnavailable, tk.Code)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 1, store.commits, "one commit for the group, no write-by-write retries")
}
