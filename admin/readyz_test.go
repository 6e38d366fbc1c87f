package admin_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/stages"
)

// feedStore is the embedded store posing as a shared one with a change feed (stages.Feed)
// whose reachability the test switches, as etcd going away and coming back would.
type feedStore struct {
	nameservice.Store
	down atomic.Bool
}

func (f *feedStore) Watch(ctx context.Context, _ uint64, _ func([]nameservice.Change, bool)) {
	<-ctx.Done()
}

func (f *feedStore) Fresh(context.Context) (bool, error) {
	if f.down.Load() {
		return false, errors.New("etcd unreachable (test)")
	}
	return true, nil
}

// waitStatus polls path until it answers want, within the test's deadline.
func waitStatus(tb testing.TB, srv *admin.Server, path string, want int) string {
	tb.Helper()
	deadline := time.Now().Add(pctest.Timeout)
	for {
		code, body := get(tb, srv, path)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s still answers %d %q, not %d", path, code, body, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadyzFollowsTheStoresReachability(t *testing.T) {
	bolt, err := nameservice.Open(t.TempDir())
	require.NoError(t, err)
	st := &feedStore{Store: bolt}
	_, srv := startDaemon(t, daemon.Config{OwnStore: st,
		Outgoing: stages.OutgoingConfig{ProbeInterval: 5 * time.Millisecond}})
	code, body := get(t, srv, "/readyz")
	require.Equal(t, http.StatusOK, code, body)

	st.down.Store(true)
	body = waitStatus(t, srv, "/readyz", http.StatusServiceUnavailable)
	assert.Contains(t, body, "unreachable")
	m := scrape(t, srv)
	assert.Equal(t, float64(1), m.value(t, "pipecache_store_unreachable"))
	assert.Equal(t, float64(0), m.value(t, "pipecache_ready"))
	code, _ = get(t, srv, "/healthz")
	assert.Equal(t, http.StatusOK, code, "alive all the same")

	st.down.Store(false)
	waitStatus(t, srv, "/readyz", http.StatusOK)
	m = scrape(t, srv)
	assert.Equal(t, float64(0), m.value(t, "pipecache_store_unreachable"))
	assert.Equal(t, float64(1), m.value(t, "pipecache_ready"))
}
