package wire

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/pipecache/pipecache/task"
)

// MaxTTL is the longest time to live a request may ask for, in milliseconds (about 31.7 years):
// far beyond any cache entry's life, and far from overflowing a deadline.
const MaxTTL = 1_000_000_000_000

// MinHello is the smallest hello frame (length prefix included) a pending conversation may
// send: the server sends a pending conversation at most three times what it received, and a
// hello's reply (with the KCP ACK) must fit in that. Clients pad the hello's JSON value (PROTOCOL.md).
const MinHello = 200

// Request describes what one request operation carries, as PROTOCOL.md specifies it. The server
// checks every request against it before the request goes further (Check); fields an operation
// does not use are ignored, not refused, so that they cost nothing (Value false: the value is
// dropped).
type Request struct {
	Key   keyUse // whether the op needs a key
	Value bool   // the op carries a value
	Flags uint32 // the flags the op defines; any other bit is refused
	Proc  bool   // the op needs a processor name ("proc", 1 to MaxProcName bytes)
}

// MaxProcName is the longest processor name a request may carry (processor.MaxNameLen).
const MaxProcName = 64

type keyUse uint8

const (
	keyNone     keyUse = iota // no key (a key sent anyway is ignored)
	keyRequired               // a non-empty key
	keyOrPrefix               // a non-empty key, or with FlagPrefix any prefix, "" included
)

// requests lists every operation a client may send.
var requests = map[task.Op]Request{
	task.OpHello:       {Value: true},
	task.OpHeartbeat:   {},
	task.OpGoodbye:     {},
	task.OpPing:        {},
	task.OpEcho:        {Value: true},
	task.OpGet:         {Key: keyRequired},
	task.OpMGet:        {Value: true},
	task.OpSet:         {Key: keyRequired, Value: true},
	task.OpAdd:         {Key: keyRequired, Value: true},
	task.OpReplace:     {Key: keyRequired, Value: true},
	task.OpCAS:         {Key: keyRequired, Value: true},
	task.OpDelete:      {Key: keyRequired},
	task.OpIncr:        {Key: keyRequired, Flags: task.FlagMustExist},
	task.OpTouch:       {Key: keyRequired},
	task.OpStats:       {Flags: task.FlagStatsText},
	task.OpExec:        {Key: keyRequired, Value: true, Proc: true},
	task.OpSubscribe:   {Key: keyOrPrefix, Flags: task.FlagPrefix | task.FlagWithValue},
	task.OpUnsubscribe: {Key: keyOrPrefix, Flags: task.FlagPrefix | task.FlagWithValue}, // the values bit is ignored
	task.OpAck:         {},
	task.OpSlowLog:     {},
	task.OpInfo:        {Value: true}, // the value: a section's name, or empty for every section
	task.OpScan:        {Value: true},
	task.OpTTL:         {Key: keyRequired},
	task.OpType:        {Key: keyRequired},
	task.OpExists:      {Value: true},
}

// RequestFor returns what op carries, and false if op is not something a client may send.
func RequestFor(op task.Op) (Request, bool) {
	r, ok := requests[op]
	return r, ok
}

// Check reports whether the decoded request h is well formed for its op: CodeOK, or the code
// and message of the error reply. It checks what the protocol fixes (the op, the key's
// presence, the flags, the TTL's range); size limits are the server's (MaxKey, MaxValue).
func Check(h *Header) (task.Code, string) {
	if h.V != Version {
		return task.CodeVersion, fmt.Sprintf("protocol version %d not supported (server speaks %d)", h.V, Version)
	}
	r, ok := requests[h.Op]
	if !ok {
		name := h.OpName
		if h.Op != task.OpNone {
			name = h.Op.String()
		}
		if name == "" {
			return task.CodeUnknownOp, "no operation"
		}
		return task.CodeUnknownOp, fmt.Sprintf("unknown operation %q", name)
	}
	if undefined := h.Flags &^ r.Flags; undefined != 0 {
		return task.CodeBadRequest, fmt.Sprintf("flags %#x are not defined for %s", undefined, h.Op)
	}
	switch {
	case r.Key == keyRequired && len(h.Key) == 0,
		r.Key == keyOrPrefix && len(h.Key) == 0 && h.Flags&task.FlagPrefix == 0:
		return task.CodeBadRequest, fmt.Sprintf("%s needs a key", h.Op)
	case h.TTL < 0 || h.TTL > MaxTTL:
		return task.CodeBadRequest, fmt.Sprintf("ttl %d ms out of range [0, %d]", h.TTL, int64(MaxTTL))
	case r.Proc && (len(h.Proc) == 0 || len(h.Proc) > MaxProcName):
		return task.CodeBadRequest, fmt.Sprintf("%s needs a processor name (proc) of 1 to %d bytes", h.Op, MaxProcName)
	}
	return task.CodeOK, ""
}

// ReplyFlags returns the flags a reply or push of op carries, out of the task's flags: only
// those the protocol defines for it.
func ReplyFlags(op task.Op, flags uint32) uint32 {
	switch op {
	case task.OpPush:
		return flags & (task.PushKindMask | task.PushCoalesced | task.PushNoValue)
	case task.OpGet, task.OpMGet:
		return flags & task.FlagStale
	case task.OpHeartbeat:
		return flags & task.FlagBehind
	}
	return 0
}

// ReplyHasValue reports whether a successful reply of op carries a value.
func ReplyHasValue(op task.Op) bool {
	switch op {
	case task.OpHello, task.OpEcho, task.OpGet, task.OpMGet, task.OpIncr, task.OpStats, task.OpPush, task.OpExec, task.OpSlowLog, task.OpInfo,
		task.OpScan, task.OpType:
		return true
	}
	return false
}

// ParseKey reads a pre-shared encryption key as PROTOCOL.md gives it: 32, 48 or 64 hexadecimal
// digits (AES-128, -192 or -256), surrounding white space ignored.
func ParseKey(text []byte) ([]byte, error) {
	s := strings.TrimSpace(string(text))
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("encryption key: not hexadecimal: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("encryption key: %d bytes; want 16, 24 or 32 (32, 48 or 64 hex digits)", len(key))
}
