package daemon

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsStateTheHeartbeatDefault: README and the example configuration give -heartbeat's
// default as the flag has it, and its lease as three of it.
func TestDocsStateTheHeartbeatDefault(t *testing.T) {
	var def time.Duration
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		if f.Name == "heartbeat" {
			def = f.Value.(flag.Getter).Get().(time.Duration)
		}
	})
	require.NotZero(t, def)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	secs := func(d time.Duration) string { return strings.TrimSuffix(d.String(), "s") + " s" }
	flat := strings.Join(strings.Fields(string(readme)), " ")
	assert.Contains(t, flat, "`-heartbeat` ("+secs(def)+"), a lease of "+secs(3*def))
	toml, err := os.ReadFile("../deploy/pipecached.toml")
	require.NoError(t, err)
	assert.Contains(t, string(toml), `heartbeat = "`+def.String()+`"`)
}
