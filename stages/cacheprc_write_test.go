package stages

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/task"
)

var errDiskOnFire = errors.New("store: the disk is on fire")

// primed returns a rig whose key k holds "1" at version 1, durable, and whose later commits
// wait for the test's decision (gateStore.decide(n, ...), n counting from 1).
func primed(t *testing.T, cfg CacheConfig, ocfg OutgoingConfig) *writeRig {
	r := newWriteRig(t, cfg, ocfg)
	require.Equal(t, task.CodeOK, r.wait(t, r.set(t, "k", "1")).Code)
	r.waitEvents(t, 1)
	r.store.hold()
	return r
}

func incr(delta int64) func(*task.Task) { return func(t *task.Task) { t.Delta = delta } }

func cas(version uint64, value string) func(*task.Task) {
	return func(t *task.Task) { t.Version, t.Value = version, append(t.Value, value...) }
}

// TestWritesToABusyKeyRideTheNextCommit: while a key's write is being committed, the writes,
// CASes, incrs, touches, execs and refusals that arrive for it are applied in memory in arrival
// order, each with its own version, each seeing what the earlier ones left; they all ride the
// next commit as one write of the key's newest value; each reply leaves once the commit that
// carries it is durable, in arrival order, each change pushed before it; a read meanwhile sees
// the durable value.
func TestWritesToABusyKeyRideTheNextCommit(t *testing.T) {
	r := primed(t, CacheConfig{}, OutgoingConfig{})
	s5 := r.set(t, "k", "5") // version 2: commit 1 takes it, and is held
	require.Equal(t, []string{"k=5@2"}, r.store.waitArrived(t, 2))

	inc := r.send(t, task.OpIncr, "k", incr(1))              // 5 + 1: "6", version 3
	bad := r.send(t, task.OpCAS, "k", cas(2, "lost"))        // the head is at 3: refused, in its turn
	good := r.send(t, task.OpCAS, "k", cas(3, "10"))         // version 4
	add := r.send(t, task.OpAdd, "k", cas(0, "x"))           // exists: refused, in its turn
	exe := r.send(t, task.OpExec, "k", func(tk *task.Task) { // sees "10": version 5
		tk.Proc, tk.Value = append(tk.Proc, "put"...), append(tk.Value, "20"...)
	})
	get := r.send(t, task.OpGet, "k", nil)
	peek := r.send(t, task.OpExec, "k", func(tk *task.Task) { tk.Proc = append(tk.Proc, "peek"...) })
	r.barrier(t)

	g := r.wait(t, get)
	require.Equal(t, task.CodeOK, g.Code)
	assert.Equal(t, "1", string(g.Value), "a read sees the durable value, not a pending one")
	assert.Equal(t, uint64(1), g.Version)
	for _, id := range []uint64{s5, inc, bad, good, add, exe, peek} {
		assert.False(t, r.answered(id), "request %d answered before its commit was durable", id)
	}
	assert.Equal(t, []string{"set k@1=1"}, r.eventsSoFar(), "nothing pushed before it is durable")

	r.store.decide(1, nil)
	assert.Equal(t, []string{"k=20@5"}, r.store.waitArrived(t, 3), "the pending requests ride one commit, as one write")
	assert.Equal(t, task.CodeOK, r.wait(t, s5).Code, "the first commit's request is answered")
	assert.False(t, r.answered(inc), "a request waits for the commit that carries it")
	r.store.decide(2, nil)
	r.wait(t, peek)

	want := []struct {
		id      uint64
		code    task.Code
		version uint64
		value   string
	}{
		{s5, task.CodeOK, 2, ""}, {inc, task.CodeOK, 3, "6"}, {bad, task.CodeVersionMismatch, 0, ""},
		{good, task.CodeOK, 4, ""}, {add, task.CodeExists, 0, ""}, {exe, task.CodeOK, 5, "10"}, {peek, task.CodeOK, 5, "20"},
	}
	var order []uint64
	for _, w := range want {
		got := r.wait(t, w.id)
		assert.Equal(t, w.code, got.Code, "request %d: %v", w.id, got.Err)
		if w.code == task.CodeOK {
			assert.Equal(t, w.version, got.Version, "request %d", w.id)
			assert.Equal(t, w.value, string(got.Value), "request %d", w.id)
		}
		order = append(order, w.id)
	}
	got := r.replyOrder()
	assert.Equal(t, order, got[len(got)-len(order):], "replies leave in arrival order")
	assert.Equal(t, []string{"set k@1=1", "set k@2=5", "set k@3=6", "set k@4=10", "set k@5=20"}, r.waitEvents(t, 5),
		"every change pushed, in order, none skipped")
	v, _ := r.store.value("k")
	assert.Equal(t, "20", v)
	st := r.cache.Stats()
	assert.Equal(t, uint64(3), st.Stores, "store_writes: one per key per commit")
	assert.Equal(t, uint64(5), st.Sets, "sets: every change committed")
}

// TestAFailedCommitTakesBackEverythingBuiltOnIt: a commit that fails mid-pipeline fails every
// request it carried with its error and every request applied after them; the key is back at
// its last durable value, which readers saw all along; nothing of it was pushed; the key works
// again at once.
func TestAFailedCommitTakesBackEverythingBuiltOnIt(t *testing.T) {
	r := primed(t, CacheConfig{}, OutgoingConfig{})
	s5 := r.set(t, "k", "5")
	r.store.waitArrived(t, 2)
	inc := r.send(t, task.OpIncr, "k", incr(1)) // "6": commit 2
	r.barrier(t)
	r.store.decide(1, nil) // "5" is durable
	r.wait(t, s5)
	require.Equal(t, []string{"k=6@3"}, r.store.waitArrived(t, 3))
	c7 := r.send(t, task.OpCAS, "k", cas(3, "7"))       // built on "6", which will fail
	del := r.send(t, task.OpDelete, "k", nil)           // built on "7"
	miss := r.send(t, task.OpReplace, "k", cas(0, "z")) // not found after the delete: refused in its turn
	get := r.send(t, task.OpGet, "k", nil)
	r.barrier(t)
	assert.Equal(t, "5", string(r.wait(t, get).Value), "readers see the durable value")

	r.store.decide(2, errDiskOnFire)
	for _, id := range []uint64{inc, c7, del, miss} {
		got := r.wait(t, id)
		assert.Equal(t, task.CodeUnavailable, got.Code, "request %d", id)
		require.Error(t, got.Err)
		assert.ErrorIs(t, got.Err, errDiskOnFire, "request %d says why", id)
	}
	assert.Equal(t, []string{"set k@1=1", "set k@2=5"}, r.eventsSoFar(), "nothing the failed commit carried was pushed")

	again := r.send(t, task.OpIncr, "k", incr(10))
	r.store.waitArrived(t, 4)
	r.store.decide(3, nil)
	got := r.wait(t, again)
	require.Equal(t, task.CodeOK, got.Code, "%v", got.Err)
	assert.Equal(t, "15", string(got.Value), "the key is back at its durable value, 5")
	assert.Equal(t, "set k@6=15", r.waitEvents(t, 3)[2])
}

// TestAFailedFirstWriteLeavesNoKey: a blind set of a key not cached fails; a read waiting for
// it is served by a load of the store instead, and nothing of the failed value shows.
func TestAFailedFirstWriteLeavesNoKey(t *testing.T) {
	r := newWriteRig(t, CacheConfig{}, OutgoingConfig{})
	r.store.hold()
	s := r.set(t, "new", "v")
	r.store.waitArrived(t, 1)
	get := r.send(t, task.OpGet, "new", nil)
	inc := r.send(t, task.OpIncr, "new", incr(1))
	r.barrier(t)
	assert.False(t, r.answered(get), "a read of a key whose value is not known waits")
	r.store.decide(0, errDiskOnFire)
	assert.Equal(t, task.CodeUnavailable, r.wait(t, s).Code)
	assert.Equal(t, task.CodeUnavailable, r.wait(t, inc).Code)
	assert.Equal(t, task.CodeNotFound, r.wait(t, get).Code, "the read loads the key: absent")
	r.store.mu.Lock()
	assert.True(t, r.store.loads["new"], "the read was served by a load")
	r.store.mu.Unlock()
	assert.Empty(t, r.eventsSoFar())
}

// TestPendingWritesPerKeyAreBounded: a key holds at most MaxPending requests waiting for the
// store (the ones its commit in flight carries included); one more is answered busy, and the
// key takes requests again once its commit is done.
func TestPendingWritesPerKeyAreBounded(t *testing.T) {
	r := primed(t, CacheConfig{MaxPending: 3}, OutgoingConfig{})
	first := r.set(t, "k", "a")
	r.store.waitArrived(t, 2)
	var ids []uint64
	for i := range 3 {
		ids = append(ids, r.set(t, "k", fmt.Sprint(i)))
	}
	other := r.set(t, "other", "o") // another key is not held back
	r.barrier(t)
	busy := r.wait(t, ids[2])
	assert.Equal(t, task.CodeBusy, busy.Code, "the fourth pending request of one key: %v", busy.Err)
	r.store.release()
	for _, id := range append([]uint64{first, other}, ids[:2]...) {
		assert.Equal(t, task.CodeOK, r.wait(t, id).Code)
	}
	v, _ := r.store.value("k")
	assert.Equal(t, "1", v)
}

// TestSerialModeCommitsOneChangeAtATime: with -no-group-commit, each commit carries one change
// of one key and the requests behind it wait, as before writes rode together.
func TestSerialModeCommitsOneChangeAtATime(t *testing.T) {
	r := primed(t, CacheConfig{}, OutgoingConfig{NoGroupCommit: true})
	a := r.set(t, "k", "a")
	r.store.waitArrived(t, 2)
	inc := r.send(t, task.OpCAS, "k", cas(2, "b")) // waits: it runs on "a"
	other := r.set(t, "other", "o")
	r.barrier(t)
	r.store.decide(1, nil)
	assert.Equal(t, []string{"other=o@3"}, r.store.waitArrived(t, 3), "one key per commit")
	r.store.decide(2, nil)
	assert.Equal(t, []string{"k=b@4"}, r.store.waitArrived(t, 4), "the next change of k once the first is durable")
	r.store.decide(3, nil)
	for _, id := range []uint64{a, inc, other} {
		assert.Equal(t, task.CodeOK, r.wait(t, id).Code)
	}
}

// TestACommitTooSlowTimesOutItsRequests: requests waiting for a commit slower than
// StoreTimeout are answered timeout; when it commits at last, its changes are applied and
// pushed, and no request is answered twice.
func TestACommitTooSlowTimesOutItsRequests(t *testing.T) {
	// The priming write has all the time a loaded machine needs; the held commit gets 50 ms,
	// which it passes whatever the machine's speed, since it waits for the test's decision.
	r := primed(t, CacheConfig{StoreTimeout: time.Hour}, OutgoingConfig{})
	require.NoError(t, r.cache.Loop().Run(pctest.Context(t), func() {
		r.cache.cfg.StoreTimeout = 50 * time.Millisecond
		r.cache.loop.Wheel().Cancel(&r.cache.commitTimer) // still set for the priming write's hour
	}))
	a := r.set(t, "k", "a")
	r.store.waitArrived(t, 2)
	b := r.send(t, task.OpIncr, "k", incr(1)) // not a counter: refused in its turn
	c := r.set(t, "k", "c")
	for _, id := range []uint64{a, b, c} {
		assert.Equal(t, task.CodeTimeout, r.wait(t, id).Code)
	}
	r.store.decide(1, nil)
	assert.Equal(t, []string{"k=c@3"}, r.store.waitArrived(t, 3))
	r.store.decide(2, nil)
	assert.Equal(t, []string{"set k@1=1", "set k@2=a", "set k@3=c"}, r.waitEvents(t, 3))
	get := r.wait(t, r.send(t, task.OpGet, "k", nil))
	assert.Equal(t, "c", string(get.Value))
	n := len(r.replyOrder())
	r.barrier(t)
	assert.Equal(t, n, len(r.replyOrder()), "no second reply")
}

// TestATimeoutCountsFromEachRequest: a request is answered timeout once it has waited
// -store-timeout itself, not when an older request has: one that came late in a slow commit
// still gets its result. (The clock is not waited for: the older request's deadline is moved to
// the past and the timer's handler run.)
func TestATimeoutCountsFromEachRequest(t *testing.T) {
	r := primed(t, CacheConfig{StoreTimeout: time.Hour}, OutgoingConfig{})
	a := r.set(t, "k", "a")
	r.store.waitArrived(t, 2)
	b := r.send(t, task.OpIncr, "k", incr(1)) // "a" is no counter: refused in its turn
	c := r.set(t, "other", "o")
	r.barrier(t)
	require.NoError(t, r.cache.Loop().Run(pctest.Context(t), func() {
		i := r.cache.tab.lookup([]byte("k"))
		r.cache.flights[i].ops[0].expires = 0 // a has waited long enough
		r.cache.commitTimedOut()
	}))
	assert.Equal(t, task.CodeTimeout, r.wait(t, a).Code)
	r.store.release()
	assert.Equal(t, task.CodeNotCounter, r.wait(t, b).Code, "b has not waited its time: it gets its own answer")
	assert.Equal(t, task.CodeOK, r.wait(t, c).Code)
	assert.Equal(t, uint64(1), r.cache.Stats().Timeouts)
}
