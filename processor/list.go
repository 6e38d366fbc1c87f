package processor

// FormatList is the format byte of a list value, version 1.
const FormatList = 0x02

// The list's sub-commands (PROCESSORS.md, "list").
const (
	ListCmdPushLeft  = 'l' // cap u, count u, count × element bytes → u: the new length
	ListCmdPushRight = 'r' // like ListCmdPushLeft, at the tail
	ListCmdRange     = 'g' // start i, stop i → u count, count × element bytes
	ListCmdTrim      = 't' // start i, stop i → u: the new length
	ListCmdLen       = 'n' // nothing → u: the length
)

// A list value is the table layout with no mid table; entry i is element i, head first.

// List is the built-in list processor (a list of byte strings, capped on push: recent events,
// a feed) on encoded values: ListType's TypeFunc.
var List = TypeFunc(ListType)
