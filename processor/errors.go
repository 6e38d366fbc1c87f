package processor

import (
	"errors"
	"fmt"
)

// Errors of the registry.
var (
	ErrBadName   = errors.New("processor: bad name")           // empty, too long, or a character outside [A-Za-z0-9_.:-]
	ErrDuplicate = errors.New("processor: already registered") // a name is registered once
	ErrNilFunc   = errors.New("processor: nil function")
)

// ErrMalformed is the error of the result decoders (results.go): the bytes are not a result of
// the shape asked for.
var ErrMalformed = errors.New("processor: malformed result")

// The kinds of error a processor call fails with. A processor returns one of them, wrapped
// with %w and a message that says what was wrong; the stage maps the kind to a wire code
// (KindOf). An error that wraps none of them is of kind KindInternal. Whatever the kind,
// nothing changed: the key keeps its value.
var (
	// ErrBadArgs: the arguments are malformed or out of range (an unknown sub-command, a
	// truncated field, a NaN score...). The caller's fault; retrying the same call fails again.
	ErrBadArgs = errors.New("processor: bad arguments")
	// ErrWrongType: the key's value is not one this processor can read (another format, or
	// corrupt). Like Redis's WRONGTYPE.
	ErrWrongType = errors.New("processor: value not readable by this processor")
	// ErrTooLarge: the new value or the result is over the limit the stage set (Limits).
	ErrTooLarge = errors.New("processor: too large")
	// ErrOverBudget: the call took more steps or more time than its budget (Limits).
	ErrOverBudget = errors.New("processor: over budget")
	// ErrInternal: a bug in the processor, such as a panic (see PanicError).
	ErrInternal = errors.New("processor: internal error")
)

// Kind classifies the error of a processor call, for the stage to map to a wire code.
type Kind uint8

// The kinds, one per sentinel above.
const (
	KindInternal   Kind = iota // ErrInternal, a panic, or an error that wraps no kind
	KindBadArgs                // ErrBadArgs
	KindWrongType              // ErrWrongType
	KindTooLarge               // ErrTooLarge
	KindOverBudget             // ErrOverBudget
)

var kindNames = [...]string{"internal", "bad_args", "wrong_type", "too_large", "over_budget"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// KindOf returns the kind of err: the first of ErrBadArgs, ErrWrongType, ErrTooLarge and
// ErrOverBudget that err wraps, else KindInternal. KindOf(nil) is KindInternal too: ask only
// about errors.
func KindOf(err error) Kind {
	switch {
	case errors.Is(err, ErrBadArgs):
		return KindBadArgs
	case errors.Is(err, ErrWrongType):
		return KindWrongType
	case errors.Is(err, ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, ErrOverBudget):
		return KindOverBudget
	}
	return KindInternal
}

// PanicError is the error of a call whose processor panicked. It wraps ErrInternal. Its
// message holds the panic's value only; Stack is for the server's log, not for the wire.
type PanicError struct {
	Value any    // what the processor panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("processor: panic: %v", e.Value) }

// Unwrap makes errors.Is(err, ErrInternal) true.
func (e *PanicError) Unwrap() error { return ErrInternal }

// badArgs, wrongType and tooLarge build the built-ins' errors.
func badArgs(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadArgs, fmt.Sprintf(format, args...))
}

func wrongType(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrWrongType, fmt.Sprintf(format, args...))
}

func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}
