package processor_test

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pipecache/pipecache/processor"
)

// maxInt keeps the largest decimal integer it was ever given (a high score, a watermark).
// Its arguments are a decimal integer; its result is the value after the call.
func maxInt(in processor.Input, out *processor.Output) error {
	n, err := strconv.ParseInt(string(in.Args), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %v", processor.ErrBadArgs, err)
	}
	cur := int64(math.MinInt64)
	if in.Exists {
		if cur, err = strconv.ParseInt(string(in.Value), 10, 64); err != nil {
			return fmt.Errorf("%w: not a decimal integer", processor.ErrWrongType)
		}
	}
	if n > cur {
		cur, out.Action, out.Value = n, processor.Set, strconv.AppendInt(out.Value, n, 10)
	}
	out.Result = strconv.AppendInt(out.Result, cur, 10)
	return nil
}

func ExampleRegistry_Register() {
	procs := processor.Default() // hash, list, zset
	if err := procs.Register("maxint", maxInt); err != nil {
		panic(err)
	}
	// What CachePrc does with a request "exec maxint 42" on a key holding "17":
	fn, _ := procs.Lookup("maxint")
	var out processor.Output // one per loop, reused by every call
	in := processor.Input{Key: []byte("best"), Value: []byte("17"), Exists: true, Args: []byte("42")}
	_, err := processor.Call(fn, in, processor.Limits{MaxValue: 1 << 20}, &out) // and Stats for metrics
	fmt.Println(out.Action, string(out.Value), string(out.Result), err)
	// Output: set 42 42 <nil>
}

func ExampleCall() {
	board := processor.Default()
	zset, _ := board.Lookup("zset")
	var out processor.Output
	var value []byte // the key does not exist yet
	for _, args := range [][]byte{
		processor.ZIncrArgs("ann", 120),
		processor.ZIncrArgs("bob", 80),
		processor.ZIncrArgs("bob", 50),
	} {
		in := processor.Input{Value: value, Exists: value != nil, Args: args}
		if _, err := processor.Call(zset, in, processor.Limits{}, &out); err != nil {
			panic(err)
		}
		if out.Action == processor.Set {
			value = append([]byte(nil), out.Value...) // the stage copies before the next call
		}
	}
	in := processor.Input{Value: value, Exists: true, Args: processor.ZTopArgs(10)}
	if _, err := processor.Call(zset, in, processor.Limits{}, &out); err != nil {
		panic(err)
	}
	top, _ := processor.DecodeMembers(out.Result)
	fmt.Println(top)
	// Output: [{bob 130} {ann 120}]
}
