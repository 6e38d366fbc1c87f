package task

import "fmt"

// Code is the result of a task, and the error code carried on the wire. Values are part of the
// protocol: never renumber one, only add.
type Code uint16

// Result codes.
const (
	CodeOK              Code = 0
	CodeNotFound        Code = 1  // the key does not exist (or expired)
	CodeExists          Code = 2  // add on a key that exists
	CodeVersionMismatch Code = 3  // compare-and-set lost, or an expired version was named
	CodeNotCounter      Code = 4  // incr/decr on a value that is not a decimal integer
	CodeTooLarge        Code = 5  // key or value over the configured limit
	CodeBadRequest      Code = 6  // malformed frame or header, or missing field
	CodeUnknownOp       Code = 7  // an operation this server does not know
	CodeUnauthorized    Code = 8  // no hello, or a wrong token
	CodeBusy            Code = 9  // a queue is full (back-pressure); retry later
	CodeUnavailable     Code = 10 // the store is down, or the server is stopping
	CodeTimeout         Code = 11 // the store did not answer in time
	CodeInternal        Code = 12 // a bug: logged with detail
	CodeDisabled        Code = 13 // the feature is switched off on this server
	CodeVersion         Code = 14 // unsupported protocol version
	CodeOverflow        Code = 15 // incr would leave the 64-bit range; nothing changed
	CodeLimit           Code = 16 // a per-session or per-server limit was reached (the message says which)
	CodeUnknownProc     Code = 17 // exec names a processor this server has not registered
	CodeWrongType       Code = 18 // exec on a value its processor cannot read (another format, or corrupt)
	CodeOverBudget      Code = 19 // exec: the processor took more steps or time than its budget; nothing changed
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeNotFound: "not_found", CodeExists: "exists",
	CodeVersionMismatch: "version_mismatch", CodeNotCounter: "not_counter",
	CodeTooLarge: "too_large", CodeBadRequest: "bad_request", CodeUnknownOp: "unknown_op",
	CodeUnauthorized: "unauthorized", CodeBusy: "busy", CodeUnavailable: "unavailable",
	CodeTimeout: "timeout", CodeInternal: "internal", CodeDisabled: "disabled",
	CodeVersion: "unsupported_version", CodeOverflow: "overflow", CodeLimit: "limit",
	CodeUnknownProc: "unknown_processor", CodeWrongType: "wrong_type", CodeOverBudget: "over_budget",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}
