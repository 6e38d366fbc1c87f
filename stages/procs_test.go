package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/processor"
)

// Test processors, for the tests of both packages (stages_test reaches them as TestProcs).
// Each reads in and args only.
var testProcs = map[string]processor.Func{
	// put: the value becomes the arguments; the result is the old value (or "(none)").
	"put": func(in processor.Input, out *processor.Output) error {
		out.Action, out.Value = processor.Set, append(out.Value, in.Args...)
		if !in.Exists {
			out.Result = append(out.Result, "(none)"...)
			return nil
		}
		out.Result = append(out.Result, in.Value...)
		return nil
	},
	// peek: the value, unchanged.
	"peek": func(in processor.Input, out *processor.Output) error {
		out.Result = append(out.Result, in.Value...)
		return nil
	},
	// drop: deletes the key.
	"drop": func(in processor.Input, out *processor.Output) error {
		out.Action = processor.Delete
		out.Result = append(out.Result, "dropped"...)
		return nil
	},
	// boom: writes half a value, then panics.
	"boom": func(in processor.Input, out *processor.Output) error {
		out.Action, out.Value = processor.Set, append(out.Value, "half"...)
		panic("boom")
	},
	// steps: charges the steps its arguments say (a decimal number).
	"steps": func(in processor.Input, out *processor.Output) error {
		n, err := strconv.Atoi(string(in.Args))
		if err != nil {
			return errors.Join(processor.ErrBadArgs, err)
		}
		if err := out.Charge(n); err != nil {
			return err
		}
		out.Action, out.Value = processor.Set, append(out.Value, "charged"...)
		return nil
	},
	// grow: writes a value of as many bytes as its arguments say (an 8-byte big-endian count).
	"grow": func(in processor.Input, out *processor.Output) error {
		if len(in.Args) != 8 {
			return processor.ErrBadArgs
		}
		out.Action, out.Value = processor.Set, append(out.Value, bytes.Repeat([]byte("g"), int(binary.BigEndian.Uint64(in.Args)))...)
		return nil
	},
	// slow: runs until the time its arguments name (a Go duration) has passed, then writes.
	"slow": func(in processor.Input, out *processor.Output) error {
		d, err := time.ParseDuration(string(in.Args))
		if err != nil {
			return errors.Join(processor.ErrBadArgs, err)
		}
		for start := time.Now(); time.Since(start) <= d; {
		}
		out.Action, out.Value = processor.Set, append(out.Value, "slow"...)
		return nil
	},
}
