package daemon

import (
	"fmt"
	"math"

	"github.com/dustin/go-humanize"
)

// sizeValue is a flag of a size in bytes that takes a unit: 4194304, "4MiB", "4 MiB", "1.5GiB",
// "512KiB" (IEC units, powers of 1024; kB, MB, GB are powers of 1000, as humanize reads them). A
// plain number is bytes, as these flags always took. Parsing is github.com/dustin/go-humanize's
// (ParseBytes); printing is exact (formatSize), so that -h's defaults read back as they are.
type sizeValue struct{ p *int64 }

func newSize(p *int64, def int64) sizeValue {
	*p = def
	return sizeValue{p}
}

func (v sizeValue) String() string {
	if v.p == nil {
		return "0"
	}
	return formatSize(*v.p)
}

// formatSize writes n bytes exactly, in the largest IEC unit that divides it: "4MiB", "1GiB",
// "1500" (bytes). It reads back as the same size.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprint(n)
}

func (v sizeValue) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("not a size (bytes, or with a unit: 64MiB, 1GiB): %q", s)
	}
	if n > math.MaxInt64 {
		return fmt.Errorf("size %q too large", s)
	}
	*v.p = int64(n)
	return nil
}

// Get implements flag.Getter (the config file's type check reads it).
func (v sizeValue) Get() any { return size(*v.p) }

// size is what a sizeValue's Get returns, so that a size is told from a plain integer.
type size int64

// sizeIntValue is a sizeValue for an int field (-max-value).
type sizeIntValue struct {
	p *int
	v int64
}

func newSizeInt(p *int, def int) *sizeIntValue {
	*p = def
	return &sizeIntValue{p: p, v: int64(def)}
}

func (v *sizeIntValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return formatSize(int64(*v.p))
}

func (v *sizeIntValue) Set(s string) error {
	if err := (sizeValue{&v.v}).Set(s); err != nil {
		return err
	}
	if v.v > math.MaxInt32 {
		return fmt.Errorf("size %q too large", s)
	}
	*v.p = int(v.v)
	return nil
}

func (v *sizeIntValue) Get() any { return size(*v.p) }
