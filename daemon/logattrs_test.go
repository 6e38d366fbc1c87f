package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/stages"
)

// TestStartupLineInOperatorsUnits: the start-up line says the data directory absolute, the
// memory budget in MiB, and the store's data version as data_version (not a bare "version",
// read as the build's), with the build beside it.
func TestStartupLineInOperatorsUnits(t *testing.T) {
	t.Chdir(t.TempDir())
	logs := newLogLines(t)
	cfg := Config{Store: "data", Version: "v1.2.3 test", Logger: slog.New(slog.NewJSONHandler(logs.w, nil)),
		Cache: stages.CacheConfig{Memory: 64 << 20}}
	cfg.Incoming.Transport.Addr = "127.0.0.1:0"
	d, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	defer logs.w.Close()
	defer d.Stop(context.Background())
	l := logs.await(t, "pipecached listening")
	dir, _ := l["data_dir"].(string)
	assert.True(t, filepath.IsAbs(dir), "data_dir %q is not absolute", dir)
	assert.Equal(t, "data", filepath.Base(dir))
	assert.Equal(t, "64 MiB", l["memory_budget"])
	assert.Contains(t, l, "data_version")
	assert.NotContains(t, l, "version")
	assert.Equal(t, "v1.2.3 test", l["build"])
}

func TestMiB(t *testing.T) {
	for in, want := range map[int64]string{512: "512 B", 1 << 20: "1 MiB", 256 << 20: "256 MiB", 3 << 19: "1.5 MiB"} {
		assert.Equal(t, want, mib(in))
	}
}
