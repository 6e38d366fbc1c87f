package wire

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
