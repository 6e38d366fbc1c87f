package daemon

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/internal/pctest"
	"github.com/pipecache/pipecache/nameservice"
)

// TestFsyncFlag: -fsync takes always (the default), everysec or no, from the command line,
// the environment or the config file; anything else is a usage error that names the choices;
// with etcd only always is offered.
func TestFsyncFlag(t *testing.T) {
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, nameservice.FsyncAlways, cfg.daemon.Fsync, "the default")
	cfg, err = parseConfig([]string{"-fsync", "everysec"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, nameservice.FsyncEverySec, cfg.daemon.Fsync)
	cfg, err = parseConfig([]string{"-config", writeFile(t, `fsync = "no"`)}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, nameservice.FsyncNo, cfg.daemon.Fsync)
	t.Setenv("PIPECACHE_FSYNC", "everysec")
	cfg, err = parseConfig(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, nameservice.FsyncEverySec, cfg.daemon.Fsync)

	var out bytes.Buffer
	assert.Equal(t, 2, Run(context.Background(), []string{"-fsync", "sometimes"}, io.Discard, &out, nil))
	assert.Contains(t, out.String(), `invalid value "sometimes" for flag -fsync`)
	assert.Contains(t, out.String(), "want always, everysec, no")

	_, err = parseConfig([]string{"-store", "etcd://127.0.0.1:2379/p", "-fsync", "everysec"}, io.Discard)
	assert.ErrorContains(t, err, "only the embedded store (-data-dir) offers it")
	_, err = parseConfig([]string{"-store", "etcd://127.0.0.1:2379/p", "-fsync", "always"}, io.Discard)
	assert.NoError(t, err)
}

// TestFsyncModeIsReported: the start-up line, the stats op and /metrics say the mode.
func TestFsyncModeIsReported(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := newLogLines(t)
	exit := make(chan int, 1)
	go func() {
		exit <- Run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "off", "-data-dir", t.TempDir(),
			"-log-format", "json", "-fsync", "everysec"}, io.Discard, logs.w, nil)
		logs.w.Close()
	}()
	line := logs.await(t, "pipecached listening")
	assert.Equal(t, "everysec", line["fsync"])

	c, err := client.Dial(line["addr"].(string))
	require.NoError(t, err)
	defer c.Close()
	tctx, tcancel := context.WithTimeout(ctx, pctest.Timeout)
	defer tcancel()
	stats, err := c.Stats(tctx)
	require.NoError(t, err)
	assert.Equal(t, int64(nameservice.FsyncEverySec), stats["fsync_mode"])

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code)
	case <-time.After(pctest.Timeout):
		t.Fatal("run did not return")
	}
}
