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

	"github.com/pipecache/pipecache/internal/pctest"
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

// runOutgoing sends writes as one group commit through an Outgoing stage's committer over store,
// as CachePrc does, and returns the outcome of each by key.
func runOutgoing(t *testing.T, store nameservice.Store, keys []string) map[string]error {
	t.Helper()
	done := newTestQueue(t, "done", 1024)
	back := make(chan *task.Task, 1)
	startLoop(t, loop.Config{Name: "cacheprc"}, done, func(tk *task.Task) { back <- tk })
	o, err := NewOutgoing(OutgoingConfig{Logger: pctest.Logger(t)}, store, done)
	require.NoError(t, err)
	require.NoError(t, o.Loop().Start())
	t.Cleanup(func() { o.Stop(context.Background()) })
	b := &commitBatch{}
	for i, k := range keys {
		b.add(uint32(i+1), []byte(k), false, []byte("v"), uint64(i+1), 0)
	}
	require.Nil(t, o.Commits().takeBack())
	o.Commits().publish(b)
	var got *task.Task
	select {
	case got = <-back:
	case <-pctest.Context(t).Done():
		t.Fatal("the commit did not come back")
	}
	require.Same(t, b, got.Ctx, "the batch comes back in its task")
	errs := map[string]error{}
	for i, w := range b.writes {
		errs[w.Key] = b.errs[i]
	}
	return errs
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
		assert.NoError(t, got[k], "write %q", k)
		_, ok, err := bolt.Get(k, 0)
		require.NoError(t, err)
		assert.True(t, ok, "%q acknowledged but not stored", k)
	}
	assert.Equal(t, task.CodeUnavailable, commitCode(got["poison"]), "the write the store failed")
	assert.Equal(t, task.CodeBadRequest, commitCode(got[""]), "an empty key is the request's fault, not the store's")
	assert.Equal(t, task.CodeBadRequest, commitCode(got[strings.Repeat("k", 40_000)]))
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
	for _, err := range got {
		assert.Equal(t, task.CodeUnavailable, commitCode(err))
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 1, store.commits, "one commit for the group, no write-by-write retries")
}
