package nameservice

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openTest(tb testing.TB, dir string) *Bolt {
	tb.Helper()
	s, err := Open(dir)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestBoltPutGetDeleteAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
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

	s2 := openTest(t, dir)
	r, ok, err = s2.Get("b", 0)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "2", string(r.Value))
	v, err := s2.MaxVersion()
	require.NoError(t, err)
	assert.Equal(t, uint64(8), v, "versions continue above the highest ever committed, deletes included")
}

func TestBoltExpiryAndSweep(t *testing.T) {
	s := openTest(t, t.TempDir())
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
	require.NoError(t, s.Scan("", 2000, func(k string, r Record) bool { keys = append(keys, k); return true }))
	assert.Equal(t, []string{"forever", "long", "moved"}, keys)

	n, err = s.SweepExpired(10_000, 100)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func TestBoltScanPrefix(t *testing.T) {
	s := openTest(t, t.TempDir())
	var ws []Write
	for i := range 10 {
		ws = append(ws, Write{Key: fmt.Sprintf("user:%d", i), Record: Record{Version: uint64(i + 1)}})
	}
	ws = append(ws, Write{Key: "room:1", Record: Record{Version: 99}})
	require.NoError(t, s.Commit(ws))
	n := 0
	require.NoError(t, s.Scan("user:", 0, func(string, Record) bool { n++; return n < 3 }))
	assert.Equal(t, 3, n, "Scan stops when fn returns false")
}

// BenchmarkBoltCommit measures durable write throughput by batch size: each Commit is one
// transaction and one fsync, so writes/s grows with the batch (group commit).
func BenchmarkBoltCommit(b *testing.B) {
	for _, batch := range []int{1, 16, 128, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openTest(b, b.TempDir())
			value := make([]byte, 100)
			ws := make([]Write, batch)
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range ws {
					ws[j] = Write{Key: fmt.Sprintf("key:%d", (i+j)%100_000), Record: Record{Value: value, Version: uint64(i + j)}}
				}
				if err := s.Commit(ws); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// TestBoltRefusesBadWritesAloneInAGroup: writes bbolt cannot take get their own error; the rest
// of the commit is applied.
func TestBoltRefusesBadWritesAloneInAGroup(t *testing.T) {
	s := openTest(t, t.TempDir())
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
}
