package wire

import "strings"

// The JSON values of a hello and of its successful reply (PROTOCOL.md, "Requests and replies").
// Fields a peer does not know are ignored, so either side may add some.

// HelloRequest is the JSON value of a hello.
type HelloRequest struct {
	Name        string `json:"name,omitempty"`
	Token       string `json:"token,omitempty"`
	HeartbeatMs int64  `json:"heartbeat_ms,omitempty"`
	Resume      string `json:"resume,omitempty"`   // resume token of a session to continue
	LastSeq     uint64 `json:"last_seq,omitempty"` // with resume: the last push seen; the rest is replayed
	Pad         string `json:"pad,omitempty"`      // ignored: pads the hello to MinHello bytes and more
}

// HelloReply is the JSON value of a successful hello's reply.
type HelloReply struct {
	Session     uint64 `json:"session"`
	Resume      string `json:"resume"`       // present it in a later hello to continue this session
	Resumed     bool   `json:"resumed"`      // the hello continued an existing session
	HeartbeatMs int64  `json:"heartbeat_ms"` // send a heartbeat at least this often
	LeaseMs     int64  `json:"lease_ms"`     // silent this long, the session expires
	Seq         uint64 `json:"seq"`          // the session's last push sequence number
	PushWindow  int    `json:"push_window"`  // pushes sent unacknowledged at most: ack well before
	PushBytes   int64  `json:"push_bytes"`   // values held unacknowledged at most: ack well before
}

// padOverhead is what a non-empty pad field adds to a hello's JSON besides its characters.
const padOverhead = len(`,"pad":""`)

// HelloValue returns r's JSON value, padded (r.Pad replaced) to at least size bytes; when it
// must be padded, to size bytes exactly unless the pad field itself overshoots (fewer than
// size+padOverhead). A value already as long is not padded.
func HelloValue(r HelloRequest, size int) []byte {
	r.Pad = ""
	value, _ := json.Marshal(r) // strings and integers: cannot fail
	if need := size - len(value); need > 0 {
		r.Pad = strings.Repeat(".", max(1, need-padOverhead))
		value, _ = json.Marshal(r)
	}
	return value
}

// AppendHello appends to dst a hello frame with header h and r's value, padded so that the
// frame (length prefix included) is at least size bytes: at least MinHello for a pending
// conversation's hello; more leaves the reply room for resends (the server sends a pending
// conversation at most three times what it received). h.Op should be task.OpHello. It fails
// only where AppendFrame does.
func AppendHello(dst []byte, h *Header, r HelloRequest, size int) ([]byte, error) {
	frame, err := AppendFrame(dst, h, nil) // to learn the header's length
	if err != nil {
		return dst, err
	}
	return AppendFrame(dst, h, HelloValue(r, size-(len(frame)-len(dst))))
}
