package wire

import "fmt"

// ScanArgs are a scan request's arguments (its value, JSON).
type ScanArgs struct {
	Cursor string `json:"cursor"` // "" or "0": from the first key; else a reply's cursor
	Match  string `json:"match"`  // a glob pattern the keys must match; "": every key
	Count  int    `json:"count"`  // keys to return at most; 0: DefaultScanCount
}

// ScanReply is a scan reply's value (JSON).
type ScanReply struct {
	Cursor string   `json:"cursor"` // "0": the scan is complete
	Keys   []string `json:"keys"`
}

// Limits of one scan step (PROTOCOL.md): they bound its time at the store.
const (
	DefaultScanCount = 10
	MaxScanCount     = 1000
	MaxScanMatch     = 256
	ScanExamineRatio = 10 // a step examines at most Count × this many keys
)

// ParseScan reads and checks a scan request's value.
func ParseScan(value []byte) (ScanArgs, error) {
	var a ScanArgs
	if len(value) > 0 {
		if err := json.Unmarshal(value, &a); err != nil {
			return a, fmt.Errorf("scan arguments: %w", err)
		}
	}
	switch {
	case a.Count == 0:
		a.Count = DefaultScanCount
	case a.Count < 0 || a.Count > MaxScanCount:
		return a, fmt.Errorf("scan count %d out of range [1, %d]", a.Count, MaxScanCount)
	}
	if len(a.Match) > MaxScanMatch {
		return a, fmt.Errorf("scan match pattern of %d bytes, over %d", len(a.Match), MaxScanMatch)
	}
	return a, nil
}
