package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/testdaemon"
)

// TestREADMEShowsWhatJSONMgetPrints: README's example of -json mget has the shape the command
// prints (one object, an items array, each item's keys), with a real daemon's answer.
func TestREADMEShowsWhatJSONMgetPrints(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)-json mget user:1 user:2 .*\n\s*# (\{.*\})$`).FindSubmatch(readme)
	require.NotNil(t, m, "README no longer shows what -json mget prints")
	var said map[string][]map[string]any
	require.NoError(t, json.Unmarshal(m[1], &said), "README's example is not JSON: %s", m[1])

	js := newTestCtl(t, config{addr: testdaemon.Start(t, daemon.Config{}).Addr().String()}, formatJSON)
	_, err = js.do("set", "user:1", "alice")
	require.NoError(t, err)
	out, err := js.do("mget", "user:1", "user:2")
	require.NoError(t, err)
	var got map[string][]map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, said["items"], 2)
	require.Len(t, got["items"], 2)
	for i := range 2 {
		assert.Equal(t, keysOf(said["items"][i]), keysOf(got["items"][i]), "item %d", i)
		assert.Equal(t, said["items"][i]["value"], got["items"][i]["value"], "item %d", i)
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestREADMEListsEveryCommand: README's table of pipecachectl's commands names every command
// of the command table, and no command that is not in it.
func TestREADMEListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)Every command `pipecachectl` offers.*?\n\n(\\|.*?)\n\n").FindSubmatch(readme)
	require.NotNil(t, m, "README no longer has the table of pipecachectl's commands")
	var listed []string
	for _, row := range regexp.MustCompile(`(?m)^\| (.*?) \| .* \|$`).FindAllSubmatch(m[1], -1) {
		for _, code := range regexp.MustCompile("`([a-z]+)[ `]").FindAllSubmatch(row[1], -1) {
			listed = append(listed, string(code[1]))
		}
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	slices.Sort(listed)
	slices.Sort(names)
	assert.Equal(t, names, slices.Compact(listed))
}
