package main

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/pipecache/pipecache/processor"
)

// rateLimit allows at most LIMIT calls per WINDOW on its key: its arguments are the text
// "LIMIT WINDOW" ("5 1m": a positive count and a Go duration of at least 1 ms). Its result is
// "ok N" (allowed, N calls left in this window) or "limited MS" (refused: the window ends in
// MS milliseconds). A refusal is a result, not an error, and changes nothing.
//
// The value is "START COUNT": the window's start in unix milliseconds and the calls allowed
// in it, so a plain get shows it. The time is the loop's clock (in.Now), never time.Now.
func rateLimit(in processor.Input, out *processor.Output) error {
	limit, window, err := parseLimit(in.Args)
	if err != nil {
		return err
	}
	now := in.Now.UnixMilli()
	start, count := now, int64(0)
	if in.Exists {
		if start, count, err = parseWindow(in.Value); err != nil {
			return err
		}
		if now-start >= window || now < start { // a new window (or a clock that went back)
			start, count = now, 0
		}
	}
	if count >= limit {
		out.Result = strconv.AppendInt(append(out.Result, "limited "...), start+window-now, 10)
		return nil // Unchanged
	}
	count++
	out.Action = processor.Set
	out.Value = strconv.AppendInt(append(strconv.AppendInt(out.Value, start, 10), ' '), count, 10)
	out.Result = strconv.AppendInt(append(out.Result, "ok "...), limit-count, 10)
	return nil
}

func parseLimit(args []byte) (limit, windowMs int64, err error) {
	l, w, ok := bytes.Cut(args, []byte(" "))
	limit, lerr := strconv.ParseInt(string(l), 10, 64)
	window, werr := time.ParseDuration(string(w))
	if !ok || lerr != nil || werr != nil || limit <= 0 || window < time.Millisecond {
		return 0, 0, fmt.Errorf("%w: want \"LIMIT WINDOW\" (\"5 1m\"), not %q", processor.ErrBadArgs, args)
	}
	return limit, window.Milliseconds(), nil
}

func parseWindow(value []byte) (start, count int64, err error) {
	s, c, ok := bytes.Cut(value, []byte(" "))
	start, serr := strconv.ParseInt(string(s), 10, 64)
	count, cerr := strconv.ParseInt(string(c), 10, 64)
	if !ok || serr != nil || cerr != nil || count < 0 {
		return 0, 0, fmt.Errorf("%w: not a rate limit's window (\"START COUNT\")", processor.ErrWrongType)
	}
	return start, count, nil
}
