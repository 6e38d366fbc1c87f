package wire

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pipecache/pipecache/task"
)

// The header parser: every request's header is parsed by the network stage, so it allocates
// nothing (jsoniter's ReadObject allocated every field name: four allocations a request) and
// reads the few fields a header has straight into the Header. It accepts what any JSON encoder
// produces for a header: an object whose values are integers, strings, or (for fields it does not
// know, which are skipped) any JSON value, nested at most maxDepth deep. Integer fields must be
// JSON integers (no fraction, no exponent) within their type's range; strings may use every JSON
// escape. FuzzParseHeader checks it against encoding/json.
//
// Two kinds of error: a header that is not a JSON object (ErrBadHeader alone) could not be read
// at all; one that is, but lacks "v" or has a field of the wrong type or range or a key that is
// not UTF-8 (ErrBadField too), was read, and its "id" and "op" are kept if they themselves are
// well formed, so that the error's reply carries them (PROTOCOL.md).

const maxDepth = 32 // nesting of an unknown field's value

var errSyntax = errors.New("invalid JSON")

// scanner reads one JSON text. pos is the next byte; why, what the last failure wanted.
type scanner struct {
	b   []byte
	pos int
	why string
}

func (s *scanner) fail(what string) error {
	s.why = what
	return fmt.Errorf("%w: %w: %s at byte %d", ErrBadHeader, errSyntax, what, s.pos)
}

func (s *scanner) space() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (s *scanner) peek() byte {
	s.space()
	if s.pos == len(s.b) {
		return 0
	}
	return s.b[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.fail(fmt.Sprintf("want %q", c))
	}
	s.pos++
	return nil
}

func parseHeader(data []byte, h *Header) error {
	h.Reset()
	s := scanner{b: data}
	if s.peek() != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadHeader)
	}
	s.pos++
	hasVersion := false
	var bad error // the first field that could not be read
	if s.peek() == '}' {
		s.pos++
	} else {
		for {
			name, err := s.rawString()
			if err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if string(name) == "v" {
				hasVersion = s.peek() != 'n' // null: as if absent
			}
			if err := s.readField(name, h); err != nil {
				if !errors.Is(err, ErrBadField) {
					return err
				}
				if bad == nil {
					bad = err
				}
			}
			if c := s.peek(); c == ',' {
				s.pos++
				continue
			} else if c == '}' {
				s.pos++
				break
			}
			return s.fail("want ',' or '}'")
		}
	}
	if s.space(); s.pos != len(s.b) { // not peek: a NUL byte is data too
		return s.fail("data after the object")
	}
	switch {
	case bad != nil:
		return bad
	case !hasVersion:
		return fmt.Errorf("%w: %w: no protocol version (v)", ErrBadHeader, ErrBadField)
	case !utf8.Valid(h.Key):
		return fmt.Errorf("%w: %w: key is not valid UTF-8", ErrBadHeader, ErrBadField)
	}
	return nil
}

// readField reads the value of the field name into h. A value of the wrong type or range is
// skipped over as any JSON value and reported as ErrBadField; only a value that is not JSON at
// all fails the header (ErrBadHeader alone).
func (s *scanner) readField(name []byte, h *Header) error {
	start := s.pos
	err := s.field(name, h)
	if err == nil {
		return nil
	}
	why := s.why
	s.pos = start
	if serr := s.skip(0); serr != nil {
		return serr
	}
	return fmt.Errorf("%w: %w: field %q: %s", ErrBadHeader, ErrBadField, name, why)
}

// field reads the value of the field name into h (a field it does not know is skipped).
func (s *scanner) field(name []byte, h *Header) (err error) {
	if s.peek() == 'n' { // null: as if absent, as encoding/json has it
		return s.literal("null")
	}
	switch string(name) { // no allocation: the conversion only compares
	case "v":
		var n int64
		n, err = s.int(math.MinInt32, math.MaxInt32)
		h.V = int(n)
	case "op":
		var op []byte
		if op, err = s.strInPlace(); err == nil {
			if h.Op = opByName[string(op)]; h.Op == task.OpNone {
				h.OpName = string(op)
			}
		}
	case "id":
		h.ID, err = s.uint(math.MaxUint64)
	case "key":
		h.Key, err = s.str(h.Key[:0])
	case "proc":
		h.Proc, err = s.str(h.Proc[:0])
	case "ttl":
		h.TTL, err = s.int(math.MinInt64, math.MaxInt64)
	case "ver":
		h.Ver, err = s.uint(math.MaxUint64)
	case "delta":
		h.Delta, err = s.int(math.MinInt64, math.MaxInt64)
	case "flags":
		var n uint64
		n, err = s.uint(math.MaxUint32)
		h.Flags = uint32(n)
	case "seq":
		h.Seq, err = s.uint(math.MaxUint64)
	case "code":
		var n uint64
		n, err = s.uint(math.MaxUint16)
		h.Code = task.Code(n)
	case "msg":
		var msg []byte
		if msg, err = s.strInPlace(); err == nil {
			h.Msg = string(msg)
		}
	default:
		err = s.skip(0) // unknown fields are ignored: newer peers may send more
	}
	return err
}

// rawString reads a field name (see strInPlace).
func (s *scanner) rawString() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.fail("want a field name")
	}
	return s.strInPlace()
}

// strInPlace reads the string at pos: in place if it has no escapes (no allocation), else
// unescaped into a fresh slice.
func (s *scanner) strInPlace() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.fail("want a string")
	}
	start := s.pos + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.pos = i + 1
			return s.b[start:i], nil
		case c == '\\':
			return s.str(nil)
		case c < 0x20:
			s.pos = i
			return nil, s.fail("control character in a string")
		}
	}
	return nil, s.fail("unterminated string")
}

// str appends the string at pos, unescaped, to dst.
func (s *scanner) str(dst []byte) ([]byte, error) {
	if s.peek() != '"' {
		return dst, s.fail("want a string")
	}
	s.pos++
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case c == '"':
			s.pos++
			return dst, nil
		case c < 0x20:
			return dst, s.fail("control character in a string")
		case c != '\\':
			dst = append(dst, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.b) {
			return dst, s.fail("unterminated escape")
		}
		e := s.b[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, err := s.unicode()
			if err != nil {
				return dst, err
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, s.fail("unknown escape")
		}
	}
	return dst, s.fail("unterminated string")
}

// unicode reads the XXXX of a \uXXXX escape (pos after the u), and a second one for a
// surrogate pair. A lone surrogate becomes U+FFFD, as encoding/json does.
func (s *scanner) unicode() (rune, error) {
	r, ok := s.hex4()
	if !ok {
		return 0, s.fail("bad \\u escape")
	}
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	if s.pos+1 < len(s.b) && s.b[s.pos] == '\\' && s.b[s.pos+1] == 'u' {
		save := s.pos
		s.pos += 2
		if r2, ok := s.hex4(); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, nil
			}
		}
		s.pos = save
	}
	return utf8.RuneError, nil
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.pos : s.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// digits reads a JSON integer's digits at pos (after any sign) as a magnitude, failing on a
// fraction, an exponent, a leading zero or a value over max.
func (s *scanner) digits(max uint64) (uint64, error) {
	start := s.pos
	var n uint64
	for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
		d := uint64(s.b[s.pos] - '0')
		if n > (max-d)/10 {
			return 0, s.fail("integer out of range")
		}
		n = n*10 + d
		s.pos++
	}
	switch {
	case s.pos == start:
		return 0, s.fail("want an integer")
	case s.b[start] == '0' && s.pos-start > 1:
		return 0, s.fail("leading zero")
	case s.pos < len(s.b) && (s.b[s.pos] == '.' || s.b[s.pos] == 'e' || s.b[s.pos] == 'E'):
		return 0, s.fail("want an integer, not a fraction")
	}
	return n, nil
}

func (s *scanner) uint(max uint64) (uint64, error) {
	s.space()
	return s.digits(max)
}

func (s *scanner) int(min, max int64) (int64, error) {
	s.space()
	if s.pos < len(s.b) && s.b[s.pos] == '-' {
		s.pos++
		n, err := s.digits(uint64(-(min + 1)) + 1)
		return -int64(n), err // -(MinInt64 magnitude) wraps to MinInt64 itself: right
	}
	n, err := s.digits(uint64(max))
	return int64(n), err
}

// skip passes over any JSON value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.fail("nested too deep")
	}
	switch c := s.peek(); {
	case c == '"':
		_, err := s.skipString()
		return err
	case c == '{' || c == '[':
		return s.skipContainer(c, depth)
	case c == '-' || '0' <= c && c <= '9':
		return s.skipNumber()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail("want a value")
}

func (s *scanner) skipString() ([]byte, error) {
	return s.strInPlace() // allocates only for an unknown string with escapes
}

func (s *scanner) skipContainer(open byte, depth int) error {
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	s.pos++
	if s.peek() == close {
		s.pos++
		return nil
	}
	for {
		if open == '{' {
			if _, err := s.rawString(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
		}
		if err := s.skip(depth + 1); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case close:
			s.pos++
			return nil
		default:
			return s.fail("want ',' or the end of a container")
		}
	}
}

// skipNumber passes over any JSON number.
func (s *scanner) skipNumber() error {
	if s.b[s.pos] == '-' {
		s.pos++
	}
	start := s.pos
	for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
		s.pos++
	}
	if s.pos == start || (s.b[start] == '0' && s.pos-start > 1) {
		return s.fail("bad number")
	}
	if s.pos < len(s.b) && s.b[s.pos] == '.' {
		s.pos++
		if !s.someDigits() {
			return s.fail("bad fraction")
		}
	}
	if s.pos < len(s.b) && (s.b[s.pos] == 'e' || s.b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.b) && (s.b[s.pos] == '+' || s.b[s.pos] == '-') {
			s.pos++
		}
		if !s.someDigits() {
			return s.fail("bad exponent")
		}
	}
	return nil
}

func (s *scanner) someDigits() bool {
	start := s.pos
	for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.pos < len(word) || string(s.b[s.pos:s.pos+len(word)]) != word {
		return s.fail("want " + word)
	}
	s.pos += len(word)
	return nil
}
