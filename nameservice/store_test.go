package nameservice

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// engines are the embedded stores every store test runs against.
var engines = []struct {
	name string
	open func(dir string) (Store, error)
}{
	{"bolt", func(dir string) (Store, error) { return OpenBolt(dir) }},
	{"pebble", func(dir string) (Store, error) { return OpenWith(dir, Options{}) }},
	{"pebble-everysec", func(dir string) (Store, error) { return OpenWith(dir, Options{Fsync: FsyncEverySec}) }},
}

// forEngines runs test once per engine.
func forEngines(t *testing.T, test func(t *testing.T, open func(tb testing.TB, dir string) Store)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			test(t, func(tb testing.TB, dir string) Store {
				tb.Helper()
				s, err := e.open(dir)
				require.NoError(tb, err)
				tb.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func TestStorePutGetDeleteAndReopen(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		dir := t.TempDir()
		s := open(t, dir)
		require.NoError(t, s.Commit([]Write{
			{Key: "a", Record: Record{Value: []byte("1"), Version: 5}},
			{Key: "b", Record: Record{Value: []byte("2"), Version: 6}},
			{Key: "a", Record: Record{Value: []byte("3"), Version: 7}}, // same key: last write wins
			{Key: "c", Record: Record{Value: []byte("x"), Version: 8}},
			{Key: "c", Delete: true},
		}))
		r, ok, err := s.Get("a", 0)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, Record{Value: []byte("3"), Version: 7}, r)
		_, ok, _ = s.Get("c", 0)
		assert.False(t, ok)
		require.NoError(t, s.Close())

		s2 := open(t, dir)
		r, ok, err = s2.Get("b", 0)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, "2", string(r.Value))
		v, err := s2.MaxVersion()
		require.NoError(t, err)
		assert.Equal(t, uint64(8), v, "versions continue above the highest ever committed, deletes included")
	})
}

func TestStoreExpiryAndSweep(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		s := open(t, t.TempDir())
		require.NoError(t, s.Commit([]Write{
			{Key: "short", Record: Record{Value: []byte("s"), Version: 1, ExpireAt: 1000}},
			{Key: "long", Record: Record{Value: []byte("l"), Version: 2, ExpireAt: 5000}},
			{Key: "moved", Record: Record{Value: []byte("m"), Version: 3, ExpireAt: 1000}},
			{Key: "forever", Record: Record{Value: []byte("f"), Version: 4}},
		}))
		require.NoError(t, s.Commit([]Write{{Key: "moved", Record: Record{Value: []byte("m2"), Version: 5, ExpireAt: 9000}}}))

		_, ok, _ := s.Get("short", 999)
		assert.True(t, ok)
		_, ok, _ = s.Get("short", 1000)
		assert.False(t, ok, "an expired record reads as absent")

		n, err := s.SweepExpired(2000, 100)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "only 'short' expired by 2000; 'moved' was given a later deadline")
		var keys []string
		require.NoError(t, s.Scan("", "", 2000, func(k string, r Record) bool { keys = append(keys, k); return true }))
		assert.Equal(t, []string{"forever", "long", "moved"}, keys)

		n, err = s.SweepExpired(10_000, 100)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
	})
}

func TestStoreScanPrefix(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		s := open(t, t.TempDir())
		var ws []Write
		for i := range 10 {
			ws = append(ws, Write{Key: fmt.Sprintf("user:%d", i), Record: Record{Version: uint64(i + 1)}})
		}
		ws = append(ws, Write{Key: "room:1", Record: Record{Version: 99}})
		require.NoError(t, s.Commit(ws))
		n := 0
		require.NoError(t, s.Scan("user:", "", 0, func(string, Record) bool { n++; return n < 3 }))
		assert.Equal(t, 3, n, "Scan stops when fn returns false")
		var keys []string
		require.NoError(t, s.Scan("user:", "user:7", 0, func(k string, _ Record) bool { keys = append(keys, k); return true }))
		assert.Equal(t, []string{"user:7", "user:8", "user:9"}, keys, "from a key on, in key order")
		keys = nil
		require.NoError(t, s.Scan("user:", "a", 0, func(k string, _ Record) bool { keys = append(keys, k); return true }))
		assert.Len(t, keys, 10, "a from below the prefix starts at the prefix")
	})
}

// TestStoreRefusesBadWritesAloneInAGroup: writes bbolt cannot take get their own error; the rest
// of the commit is applied.
func TestStoreRefusesBadWritesAloneInAGroup(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		s := open(t, t.TempDir())
		ws := []Write{
			{Key: "ok1", Record: Record{Value: []byte("1"), Version: 1}},
			{Key: "", Record: Record{Value: []byte("x"), Version: 2}},
			{Key: string(make([]byte, 40_000)), Record: Record{Value: []byte("x"), Version: 3}},
			{Key: "ok2", Record: Record{Value: []byte("2"), Version: 4}},
		}
		require.NoError(t, s.Commit(ws))
		assert.NoError(t, ws[0].Err)
		assert.ErrorIs(t, ws[1].Err, ErrInvalid)
		assert.ErrorIs(t, ws[2].Err, ErrInvalid)
		assert.NoError(t, ws[3].Err)
		for _, k := range []string{"ok1", "ok2"} {
			_, ok, err := s.Get(k, 0)
			require.NoError(t, err)
			assert.True(t, ok, k)
		}
		require.NoError(t, s.Commit([]Write{{Key: ""}}), "a commit of nothing valid applies nothing")
	})
}

// TestStoreExpiryIndexFollowsEveryChange: a deadline moved or removed (in one group, in later
// commits, across a reopen) leaves no index entry that sweeps the record at its old deadline.
func TestStoreExpiryIndexFollowsEveryChange(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		dir := t.TempDir()
		s := open(t, dir)
		put := func(key string, ver uint64, at int64) Write {
			return Write{Key: key, Record: Record{Value: []byte(key), Version: ver, ExpireAt: at}}
		}
		require.NoError(t, s.Commit([]Write{put("moved", 1, 1000), put("moved", 2, 3000), put("cleared", 3, 1000), put("cleared", 4, 0)}))
		require.NoError(t, s.Commit([]Write{put("later", 5, 1000)}))
		require.NoError(t, s.Close())
		s = open(t, dir)
		require.NoError(t, s.Commit([]Write{put("later", 6, 0), put("deleted", 7, 1000), {Key: "deleted", Delete: true}}))

		n, err := s.SweepExpired(2000, 100)
		require.NoError(t, err)
		assert.Zero(t, n, "no record carries a deadline at or before 2000 any more")
		for _, k := range []string{"moved", "cleared", "later"} {
			_, ok, err := s.Get(k, 2000)
			require.NoError(t, err)
			assert.True(t, ok, k)
		}
		n, err = s.SweepExpired(4000, 100)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "'moved' expires at 3000")
		n, err = s.SweepExpired(1<<50, 100)
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}

// TestStoreSweepStopsAtLimit: a sweep deletes at most limit records; the next one goes on.
func TestStoreSweepStopsAtLimit(t *testing.T) {
	forEngines(t, func(t *testing.T, open func(testing.TB, string) Store) {
		s := open(t, t.TempDir())
		var ws []Write
		for i := range 25 {
			ws = append(ws, Write{Key: fmt.Sprint("k", i), Record: Record{Version: uint64(i + 1), ExpireAt: int64(100 + i)}})
		}
		require.NoError(t, s.Commit(ws))
		total := 0
		for range 3 {
			n, err := s.SweepExpired(1000, 10)
			require.NoError(t, err)
			assert.LessOrEqual(t, n, 10)
			total += n
		}
		assert.Equal(t, 25, total)
	})
}

// TestStoreRefusesCallsAfterClose: a closed store answers ErrClosed, never panics.
func TestStoreRefusesCallsAfterClose(t *testing.T) {
	for _, e := range engines {
		if e.name == "bolt" {
			continue // bbolt answers with its own error
		}
		t.Run(e.name, func(t *testing.T) {
			s, err := e.open(t.TempDir())
			require.NoError(t, err)
			require.NoError(t, s.Close())
			_, _, err = s.Get("k", 0)
			assert.ErrorIs(t, err, ErrClosed)
			assert.ErrorIs(t, s.Commit([]Write{{Key: "k"}}), ErrClosed)
			_, err = s.MaxVersion()
			assert.ErrorIs(t, err, ErrClosed)
			assert.ErrorIs(t, s.Scan("", "", 0, func(string, Record) bool { return true }), ErrClosed)
			_, err = s.SweepExpired(0, 1)
			assert.ErrorIs(t, err, ErrClosed)
			assert.NoError(t, s.Close(), "a second Close is harmless")
		})
	}
}

// TestDataDirIsLocked: a second store on the same data directory is refused, saying why.
func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenWith(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = OpenWith(dir, Options{})
	assert.ErrorContains(t, err, "in use by another process")
}
