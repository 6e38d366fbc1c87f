package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// TestInfoCommand (#27 item 1): info prints the server's sections as the server wrote them,
// one when named; -json one object per section; an unknown section fails naming the sections.
func TestInfoCommand(t *testing.T) {
	d := testdaemon.Start(t, daemon.Config{})
	tc := newTestCtl(t, config{addr: d.Addr().String()}, formatText)
	_, err := tc.do("set", "k", "v")
	require.NoError(t, err)
	out, err := tc.do("info")
	require.NoError(t, err)
	assert.Regexp(t, `(?s)^# Server\n.*mode:single\n.*# Clients\n.*# Memory\n.*# Persistence\n.*store:pebble\n.*# Keyspace\n.*# Stats\n`, out)

	out, err = tc.do("info", "memory")
	require.NoError(t, err)
	assert.Regexp(t, `^# Memory\ncache_bytes:\d+\n`, out)
	assert.NotContains(t, out, "# Server")

	_, err = tc.do("info", "nosuch")
	assert.ErrorContains(t, err, "server, clients, memory, persistence, keyspace, stats")

	js := newTestCtl(t, config{addr: d.Addr().String()}, formatJSON)
	out, err = js.do("info", "keyspace")
	require.NoError(t, err)
	var got map[string]map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.NotEmpty(t, got["keyspace"]["cache_entries"], out)
}
