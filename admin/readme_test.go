package admin_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
)

// TestREADMENamesEveryMetric: every pipecache_ metric /metrics exports is in README's table
// (where `pipecache_cache_{gets,hits}_total` stands for both), and README names none that does
// not exist.
func TestREADMENamesEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(pipecache_[a-z0-9_{},]+)`").FindAllStringSubmatch(string(readme), -1) {
		for _, name := range expandBraces(m[1]) {
			named[name] = true
		}
	}
	d, srv := startDaemon(t, daemon.Config{})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Ping(pctest.Context(t))) // so that the per-op metrics exist
	exported := scrape(t, srv)
	for name := range exported {
		if strings.HasPrefix(name, "pipecache_") {
			assert.True(t, named[name], "README's metrics table does not name %s", name)
		}
	}
	for name := range named {
		_, ok := exported[name]
		assert.True(t, ok, "README names %s, which /metrics does not export", name)
	}
}

// expandBraces expands every {a,b,...} in s: "x_{a,b}_y" is x_a_y and x_b_y.
func expandBraces(s string) []string {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return []string{s}
	}
	j := strings.IndexByte(s[i:], '}')
	if j < 0 {
		return []string{s}
	}
	var out []string
	for _, alt := range strings.Split(s[i+1:i+j], ",") {
		out = append(out, expandBraces(s[:i]+alt+s[i+j+1:])...)
	}
	return out
}
