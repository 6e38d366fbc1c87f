package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The exec command: exec KEY PROC [ARGS...]. For a built-in processor (hash, list, zset) the
// arguments are its text form (parseArgs, procargs.go: "zset incr 5 alice") and the result is
// printed as text (formatResult); for any other processor the arguments, joined by
// single spaces, are its argument bytes as they are, and its result is printed as it is.

const execDoc = `Runs a processor on the server where KEY lives, atomically with every other operation on it, and prints its result and KEY's version after. The built-ins:
    hash  set F V [F V...] | get F... | del F... | getall | len
    list  lpush CAP E... | rpush CAP E... | range START STOP | trim START STOP | len
    zset  add [nx|xx|gt|lt]... SCORE MEMBER [SCORE MEMBER...] | incr DELTA MEMBER | rank M | revrank M |
          top N | range MIN MAX [desc] [limit OFFSET COUNT] | rem M... | card
  (CAP 0: no cap; a range bound may be -inf, +inf, or "(" before it for exclusive). For another processor (a custom daemon's), ARGS joined by spaces are its argument bytes and its result is printed as is (with -x the last of them is read from stdin). PROCESSORS.md describes the built-ins and their encodings.`

func runExec(ctx context.Context, e *env, args []string) (result, error) {
	key, proc, words := args[0], args[1], args[2:]
	builtin := true
	argBytes, err := parseArgs(proc, words)
	switch {
	case errors.Is(err, errNotBuiltin):
		builtin, argBytes = false, []byte(strings.Join(words, " "))
	case err != nil:
		return nil, usagef("exec %s: %s", proc, strings.TrimPrefix(err.Error(), "processor: "))
	}
	res, version, err := e.srv.Exec(ctx, key, proc, argBytes)
	if err != nil {
		return nil, err
	}
	r := execResult{key: key, proc: proc, version: version, result: res}
	if builtin {
		text, err := formatResult(proc, argBytes, res)
		if err != nil {
			return nil, fmt.Errorf("exec %s: the server's result does not decode: %w", proc, err)
		}
		r.lines = strings.Split(text, "\n")
	}
	return r, nil
}

// execResult is an exec's answer: a built-in's result as lines of text, or another
// processor's result as it is.
type execResult struct {
	key, proc string
	version   uint64
	result    []byte
	lines     []string // a built-in's result as text; nil for another processor
}

// body is what is printed of the result.
func (r execResult) body() []byte {
	if r.lines != nil {
		return []byte(strings.Join(r.lines, "\n") + "\n")
	}
	return r.result
}

func (r execResult) text(w io.Writer) {
	b := r.body()
	w.Write(b)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "(version %d)\n", r.version)
}

// raw: only the result on w (a built-in's text ends with a newline; another's bytes are as
// they are), the version on note.
func (r execResult) raw(w, note io.Writer) {
	w.Write(r.body())
	fmt.Fprintf(note, "(version %d)\n", r.version)
}

func (r execResult) json() any {
	m := map[string]any{"key": r.key, "proc": r.proc, "version": r.version}
	switch {
	case r.lines != nil:
		m["result"] = r.lines
	case utf8.Valid(r.result):
		m["result"] = string(r.result)
	default:
		m["result_base64"] = r.result // encoding/json writes []byte as base64
	}
	return m
}
