package wire

import "time"

// SlowRequest is one entry of the slow log: the JSON value of a slowlog reply is an array of
// them, newest first (PROTOCOL.md, "The slow log"). Fields a peer does not know are ignored.
type SlowRequest struct {
	Time       time.Time `json:"time"`              // when the request was decoded
	Op         string    `json:"op"`                // the request's op
	Key        string    `json:"key,omitempty"`     // its key (at most 256 bytes of it); none for mget
	DurationUs int64     `json:"duration_us"`       // decoded to reply handed to the conversation
	QueuedUs   int64     `json:"queued_us"`         // decoded to taken by the stage that served it
	Stage      string    `json:"stage,omitempty"`   // that stage: cacheprc or sessionmgr
	Client     string    `json:"client"`            // the client's address, ip:port
	Session    uint64    `json:"session,omitempty"` // the client's session
	Code       string    `json:"code"`              // the reply's result code: ok, not_found...
}

// Duration returns d.DurationUs as a time.Duration.
func (d *SlowRequest) Duration() time.Duration { return time.Duration(d.DurationUs) * time.Microsecond }
