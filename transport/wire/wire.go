package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	jsoniter "github.com/json-iterator/go"

	"github.com/pipecache/pipecache/task"
)

// Version is the protocol version this package speaks. Every message carries one; a peer
// rejects a version it does not support with CodeVersion.
const Version = 1

// Limits of the framing. A server may configure lower limits for keys and values.
const (
	prefixLen     = 4
	hlenLen       = 2
	MaxHeader     = 8 << 10                        // largest JSON header
	MaxValue      = 4 << 20                        // largest value the framing allows
	MaxFrame      = hlenLen + MaxHeader + MaxValue // largest length prefix accepted
	MaxFrameBytes = prefixLen + MaxFrame           // largest frame on the wire
	minFrame      = hlenLen + len(`{}`)            // smallest length prefix accepted
)

// Errors of the framing. ErrFrameTooLarge and ErrBadFrame in a stream are fatal for that
// stream: it cannot be re-synchronised, so the connection must be closed.
var (
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrBadFrame      = errors.New("wire: malformed frame")
	ErrBadHeader     = errors.New("wire: malformed header")
	// ErrBadField comes with ErrBadHeader for a header that is a JSON object but not a valid
	// header (no "v", a field of the wrong type or range, a key that is not UTF-8): Decode then
	// keeps its id and op, which the reply to it carries.
	ErrBadField = errors.New("wire: bad header field")
)

// Header is the JSON header of a frame. Field names are short because every message carries
// them; unknown fields are ignored so that either side can be upgraded first.
type Header struct {
	V     int       // "v": protocol version
	Op    task.Op   // "op": operation name ("get", "set", "ping", ..., "push" for a push)
	ID    uint64    // "id": request id chosen by the client, echoed on the reply; 0 on pushes
	Key   []byte    // "key": the key (UTF-8)
	TTL   int64     // "ttl": time to live, milliseconds
	Ver   uint64    // "ver": the key's version
	Delta int64     // "delta": incr amount; a counter's value on the reply
	Flags uint32    // "flags"
	Seq   uint64    // "seq": per-session sequence number of a push
	Code  task.Code // "code": result code on a reply (0 = ok)
	Msg   string    // "msg": error message on a reply
	Proc  []byte    // "proc": the processor an exec runs (ASCII name); reused like Key
	// OpName is the "op" as sent when it is not one this package knows (Op is then OpNone), so
	// that the reply to an unknown op can carry it. Encoding writes it when Op is OpNone; with
	// neither, a frame has no "op" at all (a reply to a frame whose header could not be read).
	OpName string
}

// Reset clears h, keeping the Key buffer.
func (h *Header) Reset() { *h = Header{Key: h.Key[:0], Proc: h.Proc[:0]} }

var opByName = func() map[string]task.Op {
	m := map[string]task.Op{}
	for o := task.OpNone + 1; ; o++ {
		name := o.String()
		if len(name) > 3 && name[:3] == "op(" {
			return m
		}
		if !o.IsInternal() {
			m[name] = o
		}
	}
}()

// json is the json-iterator configuration used for headers: standard-library compatible, so a
// header is plain JSON any language can produce.
var json = jsoniter.ConfigCompatibleWithStandardLibrary

var streamPool = sync.Pool{New: func() any { return jsoniter.NewStream(json, nil, 256) }}

// AppendFrame appends the frame for h and value to dst and returns the extended slice. It fails
// only if the header or value exceed the framing's limits.
func AppendFrame(dst []byte, h *Header, value []byte) ([]byte, error) {
	if len(value) > MaxValue {
		return dst, fmt.Errorf("%w: value of %d bytes", ErrFrameTooLarge, len(value))
	}
	s := streamPool.Get().(*jsoniter.Stream)
	defer streamPool.Put(s)
	s.Reset(nil)
	s.SetBuffer(s.Buffer()[:0])
	writeHeader(s, h)
	hdr := s.Buffer()
	if len(hdr) > MaxHeader {
		return dst, fmt.Errorf("%w: header of %d bytes", ErrFrameTooLarge, len(hdr))
	}
	n := hlenLen + len(hdr) + len(value)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(hdr)))
	dst = append(dst, hdr...)
	return append(dst, value...), nil
}

func writeHeader(s *jsoniter.Stream, h *Header) {
	s.WriteObjectStart()
	s.WriteObjectField("v")
	s.WriteInt(h.V)
	switch {
	case h.Op != task.OpNone:
		s.WriteMore()
		s.WriteObjectField("op")
		s.WriteString(h.Op.String())
	case h.OpName != "":
		s.WriteMore()
		s.WriteObjectField("op")
		s.WriteString(h.OpName)
	}
	if h.ID != 0 {
		s.WriteMore()
		s.WriteObjectField("id")
		s.WriteUint64(h.ID)
	}
	if len(h.Key) > 0 {
		s.WriteMore()
		s.WriteObjectField("key")
		s.WriteString(string(h.Key)) // no allocation: the conversion does not escape
	}
	writeInt := func(name string, v int64) {
		if v != 0 {
			s.WriteMore()
			s.WriteObjectField(name)
			s.WriteInt64(v)
		}
	}
	writeUint := func(name string, v uint64) {
		if v != 0 {
			s.WriteMore()
			s.WriteObjectField(name)
			s.WriteUint64(v)
		}
	}
	writeInt("ttl", h.TTL)
	writeUint("ver", h.Ver)
	writeInt("delta", h.Delta)
	writeUint("flags", uint64(h.Flags))
	writeUint("seq", h.Seq)
	writeUint("code", uint64(h.Code))
	if h.Msg != "" {
		s.WriteMore()
		s.WriteObjectField("msg")
		s.WriteString(h.Msg)
	}
	if len(h.Proc) > 0 {
		s.WriteMore()
		s.WriteObjectField("proc")
		s.WriteString(string(h.Proc))
	}
	s.WriteObjectEnd()
}

// Decode parses a frame body (what Splitter.Next returns: everything after the length prefix)
// into h and returns the value, which aliases body. Unknown header fields are ignored; an
// unknown op decodes as OpNone with its name in OpName and no error (the receiver answers
// CodeUnknownOp). h is reset first, and on an error it is left reset, but for its ID, Op and
// OpName when the error is ErrBadField (the header was read: the reply carries them): nothing
// of an earlier frame survives into the answer to this one.
func Decode(body []byte, h *Header) (value []byte, err error) {
	h.Reset()
	if len(body) < hlenLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadFrame, len(body))
	}
	hlen := int(binary.BigEndian.Uint16(body))
	if hlen > len(body)-hlenLen || hlen > MaxHeader {
		return nil, fmt.Errorf("%w: header length %d in a frame of %d", ErrBadFrame, hlen, len(body))
	}
	if err := parseHeader(body[hlenLen:hlenLen+hlen], h); err != nil {
		id, op, name := h.ID, h.Op, h.OpName
		h.Reset()
		if errors.Is(err, ErrBadField) {
			h.ID, h.Op, h.OpName = id, op, name
		}
		return nil, err
	}
	return body[hlenLen+hlen:], nil
}

// Splitter cuts frames out of a byte stream that arrives in pieces. Its buffer grows only with
// bytes that actually arrived, never with what a length prefix claims, so a hostile prefix costs
// nothing; a prefix over MaxFrame is an error at once.
//
// A Splitter is not safe for concurrent use.
type Splitter struct {
	// Limit, if not 0, is the largest frame (length prefix included) the stream may carry:
	// lower than the protocol's for a peer that may send only small frames yet.
	Limit int

	buf []byte
	off int // start of unconsumed bytes in buf
	err error
}

// Write appends stream bytes.
func (s *Splitter) Write(p []byte) {
	if s.off > 0 && s.off == len(s.buf) {
		s.buf, s.off = s.buf[:0], 0
	}
	s.buf = append(s.buf, p...)
}

// Buffer returns free space at the end of the splitter's buffer, at least n bytes, for a reader
// to fill; Commit then adds the bytes written into it. This lets a KCP Recv write in place.
func (s *Splitter) Buffer(n int) []byte {
	if s.off > 0 && s.off == len(s.buf) {
		s.buf, s.off = s.buf[:0], 0
	}
	if cap(s.buf)-len(s.buf) < n {
		if s.off > 0 { // compact before growing
			m := copy(s.buf, s.buf[s.off:])
			s.buf, s.off = s.buf[:m], 0
		}
		if cap(s.buf)-len(s.buf) < n {
			grown := make([]byte, len(s.buf), len(s.buf)+n+len(s.buf)/2)
			copy(grown, s.buf)
			s.buf = grown
		}
	}
	return s.buf[len(s.buf) : len(s.buf)+n]
}

// Commit adds n bytes written into the slice Buffer returned.
func (s *Splitter) Commit(n int) { s.buf = s.buf[:len(s.buf)+n] }

// Next returns the next complete frame body (after its length prefix), valid until the next call
// of any Splitter method, or nil if more bytes are needed. A length prefix out of range is an
// error, and the splitter stays failed: the stream cannot be re-synchronised.
func (s *Splitter) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	avail := s.buf[s.off:]
	if len(avail) < prefixLen {
		return nil, nil
	}
	n := binary.BigEndian.Uint32(avail)
	limit := uint32(MaxFrame)
	if s.Limit > 0 {
		limit = min(limit, uint32(max(s.Limit-prefixLen, 0)))
	}
	if n > limit {
		s.err = fmt.Errorf("%w: length prefix %d > %d", ErrFrameTooLarge, n, limit)
		return nil, s.err
	}
	if int(n) < minFrame {
		s.err = fmt.Errorf("%w: length prefix %d", ErrBadFrame, n)
		return nil, s.err
	}
	if len(avail) < prefixLen+int(n) {
		return nil, nil
	}
	s.off += prefixLen + int(n)
	return avail[prefixLen : prefixLen+int(n)], nil
}

// Buffered returns how many bytes are waiting for the rest of their frame.
func (s *Splitter) Buffered() int { return len(s.buf) - s.off }

// Detach takes the splitter's buffer away, emptied, for another splitter to Attach, if it
// holds no partial frame (nil otherwise, and the splitter keeps it). An idle conversation gives
// its buffer back this way.
func (s *Splitter) Detach() []byte {
	if s.off != len(s.buf) {
		return nil
	}
	b := s.buf[:0]
	s.buf, s.off = nil, 0
	return b
}

// Attach gives an empty splitter (one that Detach emptied) buf to fill.
func (s *Splitter) Attach(buf []byte) {
	if len(s.buf) == 0 {
		s.buf, s.off = buf[:0], 0
	}
}

// Shrink releases a large buffer once it holds no partial frame, so one big value does not pin
// memory for the life of a connection.
func (s *Splitter) Shrink(limit int) {
	if s.off == len(s.buf) && cap(s.buf) > limit {
		s.buf, s.off = nil, 0
	}
}
