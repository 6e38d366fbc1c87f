package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseStatmRSS(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"5440 1234 800 200 0 900 0\n", 1234},
		{"5440 1234", 1234},
		{"", 0},
		{"5440", 0},
		{"5440 -3 1", 0},
		{"a b c", 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, parseStatmRSS([]byte(tt.in)), "%q", tt.in)
	}
}

func TestRSSAndHeapAreRead(t *testing.T) {
	assert.Positive(t, rssBytes())
	assert.Positive(t, heapBytes())
}

func FuzzParseStatmRSS(f *testing.F) {
	f.Add([]byte("5440 1234 800 200 0 900 0\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := parseStatmRSS(b); n < 0 {
			t.Fatalf("negative RSS %d from %q", n, b)
		}
	})
}
