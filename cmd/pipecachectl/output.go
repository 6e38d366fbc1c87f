package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"github.com/pipecache/pipecache/client"
)

// format is how results are printed: for people, bare for scripts, or JSON.
type format int

const (
	formatText format = iota // redis-cli-like: "OK (version 3)", "(nil)", "(integer) 5"
	formatRaw                // only the data on stdout; annotations (versions, (nil)) on stderr
	formatJSON               // one JSON object per result on stdout, errors included
)

// result is what a command produced, printable in each format.
type result interface {
	// text writes the result for people.
	text(w io.Writer)
	// raw writes only the data to w and what annotates it to note.
	raw(w, note io.Writer)
	// json returns the value to encode as the result's JSON object.
	json() any
}

// printer writes results and errors in one format.
type printer struct {
	format format
	out    io.Writer // results (and, with JSON, errors)
	errw   io.Writer // annotations with -raw; errors unless JSON
}

func (p *printer) print(r result) {
	switch p.format {
	case formatRaw:
		r.raw(p.out, p.errw)
	case formatJSON:
		writeJSON(p.out, r.json())
	default:
		r.text(p.out)
	}
}

// printError reports a failed command: prefixed with where it happened (a line number in a
// script, nothing interactively), on errw, or as a JSON object on out.
func (p *printer) printError(prefix string, err error) {
	if p.format == formatJSON {
		writeJSON(p.out, map[string]string{"error": err.Error(), "kind": errorKind(err)})
		return
	}
	fmt.Fprintf(p.errw, "%s%v\n", prefix, err)
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error(), "kind": "internal"})
	}
	w.Write(append(b, '\n'))
}

// errorKinds names the SDK's errors for -json output, the codes of PROTOCOL.md where there is one.
var errorKinds = []struct {
	err  error
	kind string
}{
	{client.ErrNotFound, "not_found"}, {client.ErrExists, "exists"},
	{client.ErrVersionMismatch, "version_mismatch"}, {client.ErrNotCounter, "not_counter"},
	{client.ErrTooLarge, "too_large"}, {client.ErrBadRequest, "bad_request"},
	{client.ErrUnknownOp, "unknown_op"}, {client.ErrUnauthorized, "unauthorized"},
	{client.ErrBusy, "busy"}, {client.ErrUnavailable, "unavailable"}, {client.ErrTimeout, "timeout"},
	{client.ErrDisabled, "disabled"}, {client.ErrProtocol, "version"}, {client.ErrClosed, "closed"},
	{client.ErrUnknownProcessor, "unknown_processor"}, {client.ErrWrongType, "wrong_type"},
	{client.ErrOverBudget, "over_budget"},
	{client.ErrInternal, "internal"},
}

func errorKind(err error) string {
	var u usageError
	switch {
	case errors.As(err, &u):
		return "usage"
	case errors.Is(err, errInterrupted):
		return "interrupted"
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "error"
}

// jsonValue puts a value into JSON: as "value" if it is UTF-8 text, else as "value_base64".
func jsonValue(m map[string]any, v []byte) map[string]any {
	if utf8.Valid(v) {
		m["value"] = string(v)
	} else {
		m["value_base64"] = base64.StdEncoding.EncodeToString(v)
	}
	return m
}

// itemResult is a get's answer: the item, or found false.
type itemResult struct {
	key   string
	item  client.Item
	found bool
}

func (r itemResult) text(w io.Writer) {
	if !r.found {
		fmt.Fprintln(w, "(nil)")
		return
	}
	fmt.Fprintf(w, "%s\n(version %d%s)\n", r.item.Value, r.item.Version, staleNote(r.item))
}

func (r itemResult) raw(w, note io.Writer) {
	if !r.found {
		fmt.Fprintln(note, "(nil)")
		return
	}
	w.Write(r.item.Value)
	fmt.Fprintf(note, "(version %d%s)\n", r.item.Version, staleNote(r.item))
}

func (r itemResult) json() any {
	if !r.found {
		return map[string]any{"key": r.key, "value": nil}
	}
	return itemJSON(r.item)
}

func itemJSON(it client.Item) map[string]any {
	m := map[string]any{"key": it.Key, "version": it.Version}
	if it.Stale {
		m["stale"] = true
	}
	return jsonValue(m, it.Value)
}

func staleNote(it client.Item) string {
	if it.Stale {
		return ", stale: the store is unreachable"
	}
	return ""
}

// itemsResult is an mget's answer, in the order the keys were asked.
type itemsResult struct {
	keys  []string
	items map[string]client.Item
}

func (r itemsResult) text(w io.Writer) {
	for i, k := range r.keys {
		if it, ok := r.items[k]; ok {
			fmt.Fprintf(w, "%d) %s = %s (version %d%s)\n", i+1, quoteArg(k), it.Value, it.Version, staleNote(it))
		} else {
			fmt.Fprintf(w, "%d) %s (nil)\n", i+1, quoteArg(k))
		}
	}
}

// raw: one value per line (an empty line for a missing key); the versions go to note.
func (r itemsResult) raw(w, note io.Writer) {
	for i, k := range r.keys {
		it, ok := r.items[k]
		if ok {
			w.Write(it.Value)
			fmt.Fprintf(note, "%d) (version %d%s)\n", i+1, it.Version, staleNote(it))
		} else {
			fmt.Fprintf(note, "%d) (nil)\n", i+1)
		}
		fmt.Fprintln(w)
	}
}

func (r itemsResult) json() any {
	list := make([]any, len(r.keys))
	for i, k := range r.keys {
		if it, ok := r.items[k]; ok {
			list[i] = itemJSON(it)
		} else {
			list[i] = map[string]any{"key": k, "value": nil}
		}
	}
	return map[string]any{"items": list}
}

// versionResult is a write's answer: the key's new version.
type versionResult struct {
	key     string
	version uint64
}

func (r versionResult) text(w io.Writer)      { fmt.Fprintf(w, "OK (version %d)\n", r.version) }
func (r versionResult) raw(w, note io.Writer) { fmt.Fprintln(w, r.version) }
func (r versionResult) json() any {
	return map[string]any{"key": r.key, "ok": true, "version": r.version}
}

// okResult is the answer of a command that changes a key and returns nothing (del, touch);
// found false is a del of a key that was not there.
type okResult struct {
	key   string
	found bool
}

func (r okResult) text(w io.Writer) {
	if r.found {
		fmt.Fprintln(w, "OK")
	} else {
		fmt.Fprintln(w, "(nil)")
	}
}

func (r okResult) raw(w, note io.Writer) {
	if r.found {
		fmt.Fprintln(w, "OK")
	} else {
		fmt.Fprintln(note, "(nil)")
	}
}

func (r okResult) json() any { return map[string]any{"key": r.key, "ok": r.found} }

// intResult is a counter's new value.
type intResult struct {
	key string
	n   int64
}

func (r intResult) text(w io.Writer)      { fmt.Fprintf(w, "(integer) %d\n", r.n) }
func (r intResult) raw(w, note io.Writer) { fmt.Fprintln(w, r.n) }
func (r intResult) json() any             { return map[string]any{"key": r.key, "value": r.n} }

// lineResult is one line of text (PONG, an owner); name is its JSON field.
type lineResult struct {
	name, value string
	extra       map[string]any // more JSON fields
}

func (r lineResult) text(w io.Writer)      { fmt.Fprintln(w, r.value) }
func (r lineResult) raw(w, note io.Writer) { fmt.Fprintln(w, r.value) }
func (r lineResult) json() any {
	m := map[string]any{r.name: r.value}
	for k, v := range r.extra {
		m[k] = v
	}
	return m
}

// listResult is a list of lines (the nodes).
type listResult struct {
	name  string
	lines []string
}

func (r listResult) text(w io.Writer) {
	for _, l := range r.lines {
		fmt.Fprintln(w, l)
	}
}
func (r listResult) raw(w, note io.Writer) { r.text(w) }
func (r listResult) json() any             { return map[string]any{r.name: r.lines} }

// statsResult is the server's build, then its counters sorted by name.
type statsResult client.ServerStats

func (r statsResult) text(w io.Writer) {
	if r.Version != "" {
		fmt.Fprintf(w, "version: %s\n", r.Version)
	}
	names := make([]string, 0, len(r.Counters))
	for k := range r.Counters {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "%s: %d\n", k, r.Counters[k])
	}
}
func (r statsResult) raw(w, note io.Writer) { r.text(w) }
func (r statsResult) json() any {
	m := make(map[string]any, len(r.Counters)+1)
	for k, v := range r.Counters {
		m[k] = v
	}
	if r.Version != "" {
		m["version"] = r.Version
	}
	return m
}

// eventResult is one change that watch received.
type eventResult client.Event

func (r eventResult) text(w io.Writer) {
	ev := client.Event(r)
	switch ev.Kind {
	case client.EventResync:
		if ev.Key != "" {
			fmt.Fprintf(w, "[%d] resync: %s moved to another node; changes may have been missed\n", ev.Seq, quoteArg(ev.Key))
			return
		}
		fmt.Fprintf(w, "[%d] resync: changes were missed; re-read what you watch\n", ev.Seq)
	case client.EventSet:
		fmt.Fprintf(w, "[%d] set %s = %s (version %d%s)\n", ev.Seq, quoteArg(ev.Key), ev.Value, ev.Version, coalescedNote(ev))
	default:
		fmt.Fprintf(w, "[%d] %s %s (version %d%s)\n", ev.Seq, ev.Kind, quoteArg(ev.Key), ev.Version, coalescedNote(ev))
	}
}

func coalescedNote(ev client.Event) string {
	if ev.Coalesced {
		return ", coalesced: earlier versions skipped"
	}
	return ""
}

func (r eventResult) raw(w, note io.Writer) { r.text(w) }

func (r eventResult) json() any {
	m := map[string]any{"seq": r.Seq, "event": r.Kind.String(), "key": r.Key, "version": r.Version}
	if r.Coalesced {
		m["coalesced"] = true
	}
	if r.Kind == client.EventSet {
		jsonValue(m, r.Value)
	}
	return m
}

// textResult is help text: the same in every format but JSON.
type textResult struct{ body string }

func (r textResult) text(w io.Writer)      { io.WriteString(w, r.body) }
func (r textResult) raw(w, note io.Writer) { r.text(w) }
func (r textResult) json() any             { return map[string]string{"help": r.body} }
