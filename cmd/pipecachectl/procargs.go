package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pipecache/pipecache/processor"
)

// The text form of the built-ins' arguments and results that exec KEY PROC ARGS... takes and
// prints, over package processor's argument builders and result decoders. The words are
// PROCESSORS.md's sub-command names:
//
//	hash  set F V [F V...] | get F... | del F... | getall | len
//	list  lpush CAP E... | rpush CAP E... | range START STOP | trim START STOP | len
//	zset  add [nx|xx|gt|lt]... SCORE MEMBER [SCORE MEMBER...] | incr DELTA MEMBER | rank M | revrank M |
//	      top N | range MIN MAX [desc] [limit OFFSET COUNT] | rem M... | card
//
// A zset range bound may be -inf or +inf, and "(" before it makes it exclusive, as in Redis.

// errNotBuiltin is returned by parseArgs and formatResult for a processor that is not a
// built-in.
var errNotBuiltin = errors.New("not a built-in processor")

// parseArgs encodes the text form of a built-in's arguments.
func parseArgs(proc string, words []string) ([]byte, error) {
	if len(words) == 0 {
		return nil, badArgs("no sub-command")
	}
	var parse func(cmd string, w []string) ([]byte, error)
	switch proc {
	case "hash":
		parse = parseHashText
	case "list":
		parse = parseListText
	case "zset":
		parse = parseZSetText
	default:
		return nil, fmt.Errorf("%w: %q", errNotBuiltin, proc)
	}
	return parse(strings.ToLower(words[0]), words[1:])
}

func wantWords(cmd string, w []string, n int, usage string) error {
	if len(w) != n {
		return badArgs("%s takes %s", cmd, usage)
	}
	return nil
}

func parseHashText(cmd string, w []string) ([]byte, error) {
	switch cmd {
	case "set":
		if len(w) == 0 || len(w)%2 != 0 {
			return nil, badArgs("set takes FIELD VALUE pairs")
		}
		var fs []processor.Field
		for i := 0; i < len(w); i += 2 {
			fs = append(fs, processor.Field{Name: w[i], Value: []byte(w[i+1])})
		}
		return processor.HashSetArgs(fs...), nil
	case "get", "del":
		if len(w) == 0 {
			return nil, badArgs("%s takes FIELD...", cmd)
		}
		if cmd == "get" {
			return processor.HashGetArgs(w...), nil
		}
		return processor.HashDelArgs(w...), nil
	case "getall", "len":
		if err := wantWords(cmd, w, 0, "nothing"); err != nil {
			return nil, err
		}
		if cmd == "len" {
			return processor.HashLenArgs(), nil
		}
		return processor.HashGetAllArgs(), nil
	}
	return nil, badArgs("hash has no sub-command %q (set, get, del, getall, len)", cmd)
}

func parseListText(cmd string, w []string) ([]byte, error) {
	switch cmd {
	case "lpush", "rpush":
		if len(w) < 2 {
			return nil, badArgs("%s takes CAP ELEMENT...", cmd)
		}
		capacity, err := strconv.ParseUint(w[0], 10, 64)
		if err != nil {
			return nil, badArgs("cap %q: %v", w[0], err)
		}
		es := make([][]byte, len(w)-1)
		for i, e := range w[1:] {
			es[i] = []byte(e)
		}
		return processor.ListPushArgs(cmd == "lpush", capacity, es...), nil
	case "range", "trim":
		if err := wantWords(cmd, w, 2, "START STOP"); err != nil {
			return nil, err
		}
		start, err1 := strconv.ParseInt(w[0], 10, 64)
		stop, err2 := strconv.ParseInt(w[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, badArgs("%s: START and STOP are integers", cmd)
		}
		if cmd == "range" {
			return processor.ListRangeArgs(start, stop), nil
		}
		return processor.ListTrimArgs(start, stop), nil
	case "len":
		if err := wantWords(cmd, w, 0, "nothing"); err != nil {
			return nil, err
		}
		return processor.ListLenArgs(), nil
	}
	return nil, badArgs("list has no sub-command %q (lpush, rpush, range, trim, len)", cmd)
}

func parseZSetText(cmd string, w []string) ([]byte, error) {
	switch cmd {
	case "add":
		return parseZAddText(w)
	case "incr":
		if err := wantWords(cmd, w, 2, "DELTA MEMBER"); err != nil {
			return nil, err
		}
		d, err := strconv.ParseFloat(w[0], 64)
		if err != nil {
			return nil, badArgs("delta %q: %v", w[0], err)
		}
		return processor.ZIncrArgs(w[1], d), nil
	case "rank", "revrank":
		if err := wantWords(cmd, w, 1, "MEMBER"); err != nil {
			return nil, err
		}
		return processor.ZRankArgs(w[0], cmd == "revrank"), nil
	case "top":
		if err := wantWords(cmd, w, 1, "N"); err != nil {
			return nil, err
		}
		n, err := strconv.ParseUint(w[0], 10, 64)
		if err != nil {
			return nil, badArgs("top %q: %v", w[0], err)
		}
		return processor.ZTopArgs(n), nil
	case "range":
		return parseZRangeText(w)
	case "rem":
		if len(w) == 0 {
			return nil, badArgs("rem takes MEMBER...")
		}
		return processor.ZRemArgs(w...), nil
	case "card":
		if err := wantWords(cmd, w, 0, "nothing"); err != nil {
			return nil, err
		}
		return processor.ZCardArgs(), nil
	}
	return nil, badArgs("zset has no sub-command %q (add, incr, rank, revrank, top, range, rem, card)", cmd)
}

// parseZAddText parses add [nx|xx|gt|lt]... SCORE MEMBER [SCORE MEMBER...]: one pair is the
// add of one member (its status and score in the result), several the add of several (the
// number added, as Redis's ZADD).
func parseZAddText(w []string) ([]byte, error) {
	var flags byte
	for len(w) > 0 {
		f, ok := map[string]byte{"nx": processor.ZAddNX, "xx": processor.ZAddXX, "gt": processor.ZAddGT, "lt": processor.ZAddLT}[strings.ToLower(w[0])]
		if !ok {
			break
		}
		flags |= f
		w = w[1:]
	}
	if len(w) == 0 || len(w)%2 != 0 {
		return nil, badArgs("add takes [nx|xx|gt|lt]... SCORE MEMBER [SCORE MEMBER...]")
	}
	ms := make([]processor.Member, 0, len(w)/2)
	for ; len(w) > 0; w = w[2:] {
		s, err := strconv.ParseFloat(w[0], 64)
		if err != nil {
			return nil, badArgs("score %q: %v", w[0], err)
		}
		ms = append(ms, processor.Member{Name: w[1], Score: s})
	}
	if len(ms) == 1 {
		return processor.ZAddArgs(ms[0].Name, ms[0].Score, flags), nil
	}
	return processor.ZAddManyArgs(flags, ms...), nil
}

func parseZRangeText(w []string) ([]byte, error) {
	if len(w) < 2 {
		return nil, badArgs("range takes MIN MAX [desc] [limit OFFSET COUNT]")
	}
	lo, exLo, err1 := parseBound(w[0])
	hi, exHi, err2 := parseBound(w[1])
	if err1 != nil || err2 != nil {
		return nil, badArgs("range: MIN and MAX are numbers, -inf or +inf, optionally after (")
	}
	var flags byte
	if exLo {
		flags |= processor.ZRangeMinExclusive
	}
	if exHi {
		flags |= processor.ZRangeMaxExclusive
	}
	w = w[2:]
	if len(w) > 0 && strings.EqualFold(w[0], "desc") {
		flags |= processor.ZRangeDescending
		w = w[1:]
	}
	var offset, limit uint64
	if len(w) > 0 {
		var err3, err4 error
		if len(w) != 3 || !strings.EqualFold(w[0], "limit") {
			return nil, badArgs("range: after MIN MAX comes [desc] [limit OFFSET COUNT]")
		}
		offset, err3 = strconv.ParseUint(w[1], 10, 64)
		limit, err4 = strconv.ParseUint(w[2], 10, 64)
		if err3 != nil || err4 != nil {
			return nil, badArgs("range: OFFSET and COUNT are unsigned integers")
		}
	}
	return processor.ZRangeArgs(lo, hi, flags, offset, limit), nil
}

func parseBound(s string) (float64, bool, error) {
	exclusive := strings.HasPrefix(s, "(")
	f, err := strconv.ParseFloat(strings.TrimPrefix(s, "("), 64)
	if err == nil && math.IsNaN(f) {
		err = badArgs("NaN")
	}
	return f, exclusive, err
}

// formatResult renders the result of a built-in's call, whose arguments were args, as text:
// one line per item.
func formatResult(proc string, args, result []byte) (string, error) {
	if len(args) == 0 {
		return "", badArgs("no sub-command")
	}
	shape, ok := resultShapes[shapeKey{proc, args[0]}]
	if !ok {
		return "", fmt.Errorf("%w: %q sub-command %q", errNotBuiltin, proc, args[0])
	}
	return shape(result)
}

type shapeKey struct {
	proc string
	cmd  byte
}

var resultShapes = map[shapeKey]func([]byte) (string, error){
	{"hash", processor.HashCmdSet}: formatCount, {"hash", processor.HashCmdDel}: formatCount, {"hash", processor.HashCmdLen}: formatCount,
	{"hash", processor.HashCmdGet}: formatOptionals, {"hash", processor.HashCmdGetAll}: formatFields,
	{"list", processor.ListCmdPushLeft}: formatCount, {"list", processor.ListCmdPushRight}: formatCount,
	{"list", processor.ListCmdTrim}: formatCount, {"list", processor.ListCmdLen}: formatCount, {"list", processor.ListCmdRange}: formatElements,
	{"zset", processor.ZSetCmdAdd}: formatScore, {"zset", processor.ZSetCmdAddMany}: formatCount, {"zset", processor.ZSetCmdIncr}: formatScore, {"zset", processor.ZSetCmdRank}: formatRank,
	{"zset", processor.ZSetCmdTop}: formatMembers, {"zset", processor.ZSetCmdRange}: formatMembers,
	{"zset", processor.ZSetCmdRem}: formatCount, {"zset", processor.ZSetCmdCard}: formatCount,
}

// quoteText quotes b (as a Go string) unless it is printable UTF-8 without spaces.
func quoteText(b []byte) string {
	s := string(b)
	if s != "" && utf8.ValidString(s) && !strings.Contains(s, " ") && isPrintableText(s) {
		return s
	}
	return strconv.Quote(s)
}

func isPrintableText(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

func formatCount(res []byte) (string, error) {
	n, err := processor.DecodeCount(res)
	return line(fmt.Sprintf("(integer) %d", n), err)
}

// line returns s, or nothing and err.
func line(s string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return s, nil
}

func formatOptionals(res []byte) (string, error) {
	os, err := processor.DecodeOptionals(res)
	lines := make([]string, len(os))
	for i, o := range os {
		lines[i] = "(nil)"
		if o.Found {
			lines[i] = quoteText(o.Value)
		}
	}
	return lines2(lines, err)
}

func formatFields(res []byte) (string, error) {
	fs, err := processor.DecodeFields(res)
	lines := make([]string, len(fs))
	for i, f := range fs {
		lines[i] = quoteText([]byte(f.Name)) + " " + quoteText(f.Value)
	}
	return lines2(lines, err)
}

func formatElements(res []byte) (string, error) {
	es, err := processor.DecodeElements(res)
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = quoteText(e)
	}
	return lines2(lines, err)
}

func formatMembers(res []byte) (string, error) {
	ms, err := processor.DecodeMembers(res)
	lines := make([]string, len(ms))
	for i, m := range ms {
		lines[i] = quoteText([]byte(m.Name)) + " " + strconv.FormatFloat(m.Score, 'g', -1, 64)
	}
	return lines2(lines, err)
}

func formatScore(res []byte) (string, error) {
	s, err := processor.DecodeScore(res)
	status := [...]string{"unchanged", "added", "updated", "absent"}[min(s.Status, processor.ZAbsent)]
	if s.Status == processor.ZAbsent {
		return line(status, err)
	}
	return line(status+" "+strconv.FormatFloat(s.Score, 'g', -1, 64), err)
}

func formatRank(res []byte) (string, error) {
	r, err := processor.DecodeRank(res)
	if !r.Found {
		return line("(nil)", err)
	}
	return line(fmt.Sprintf("(integer) %d (score %s)", r.Rank, strconv.FormatFloat(r.Score, 'g', -1, 64)), err)
}

func lines2(lines []string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if len(lines) == 0 {
		return "(empty)", nil
	}
	return strings.Join(lines, "\n"), nil
}

// badArgs is a processor.ErrBadArgs saying what was wrong.
func badArgs(format string, args ...any) error {
	return fmt.Errorf("%w: %s", processor.ErrBadArgs, fmt.Sprintf(format, args...))
}
