package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxSourceIPs bounds how many source addresses ParseSourceIPs returns (each gets sockets of its
// own).
const MaxSourceIPs = 4096

// ErrBadSourceIPs: a -source-ips list that cannot be read.
var ErrBadSourceIPs = errors.New("bench: bad source address list")

// ParseSourceIPs reads a list of source addresses: comma-separated addresses and inclusive
// ranges of one family, e.g. "127.0.1.1-127.0.1.64" or "10.0.0.5,10.0.0.7-10.0.0.9". The empty
// string is no list (nil). Duplicates are an error, as are more than MaxSourceIPs addresses.
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, err := parseRange(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrBadSourceIPs, s, err)
		}
		for a := lo; ; a = a.Next() {
			if seen[a] {
				return nil, fmt.Errorf("%w: %q: %s given twice", ErrBadSourceIPs, s, a)
			}
			if len(out) == MaxSourceIPs {
				return nil, fmt.Errorf("%w: %q: more than %d addresses", ErrBadSourceIPs, s, MaxSourceIPs)
			}
			seen[a] = true
			out = append(out, a)
			if a == hi {
				break
			}
		}
	}
	if len(out) > 0 {
		for _, a := range out[1:] {
			if a.Is4() != out[0].Is4() {
				return nil, fmt.Errorf("%w: %q: IPv4 and IPv6 addresses mixed", ErrBadSourceIPs, s)
			}
		}
	}
	return out, nil
}

// parseRange reads "addr" or "first-last" (last >= first, same family, no zones).
func parseRange(part string) (lo, hi netip.Addr, err error) {
	first, last, isRange := strings.Cut(part, "-")
	if lo, err = parseSourceAddr(first); err != nil {
		return lo, hi, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseSourceAddr(last); err != nil {
		return lo, hi, err
	}
	switch {
	case lo.Is4() != hi.Is4():
		return lo, hi, fmt.Errorf("range %s: two address families", part)
	case hi.Less(lo):
		return lo, hi, fmt.Errorf("range %s: the last address is below the first", part)
	}
	return lo, hi, nil
}

func parseSourceAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	switch {
	case err != nil:
		return a, err
	case a.Zone() != "":
		return a, fmt.Errorf("%s: zones are not supported", s)
	case a.IsUnspecified() || a.IsMulticast():
		return a, fmt.Errorf("%s: not a source address", s)
	}
	return a.Unmap(), nil
}
