package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pipecache/pipecache/transport/wire"
)

// TestInfoSectionsAreTheProtocols: the daemon writes the sections the protocol names
// (wire.InfoSections, which PROTOCOL.md lists and clients offer), in its order.
func TestInfoSectionsAreTheProtocols(t *testing.T) {
	var names []string
	for _, s := range infoSections {
		names = append(names, s.name)
	}
	assert.Equal(t, wire.InfoSections, names)
}
