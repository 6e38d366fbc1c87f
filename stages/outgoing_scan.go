package stages

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gobwas/glob"

	"github.com/pipecache/pipecache/nameservice"
	"github.com/pipecache/pipecache/task"
	"github.com/pipecache/pipecache/transport/wire"
)

// scanStep does one step of a scan on a worker goroutine (it may block on the store): it reads
// the store's keys after the cursor, in key order, keeps those that match, and stops after
// Count kept or Count × wire.ScanExamineRatio examined, whichever comes first. The next cursor is the
// last key examined (base64url), or "0" when no key is left. t becomes the reply.
func (o *Outgoing) scanStep(t *task.Task) {
	a, err := wire.ParseScan(t.Value)
	var g glob.Glob
	if err == nil && a.Match != "" {
		if g, err = glob.Compile(a.Match); err != nil {
			err = fmt.Errorf("scan match pattern %q: %w", a.Match, err)
		}
	}
	var after string
	if err == nil && a.Cursor != "" && a.Cursor != "0" {
		var b []byte
		b, err = base64.RawURLEncoding.DecodeString(a.Cursor)
		after = string(b)
	}
	if err != nil {
		t.Fail(task.CodeBadRequest, err)
		t.Value = t.Value[:0]
		return
	}
	prefix := literalPrefix(a.Match)
	reply := wire.ScanReply{Keys: []string{}}
	examined, last, more := 0, "", false
	err = o.store.Scan(prefix, after, time.Now().UnixMilli(), func(key string, _ nameservice.Record) bool {
		if key == after && after != "" {
			return true // the cursor's own key was returned (or skipped) by the step before
		}
		if examined == a.Count*wire.ScanExamineRatio || len(reply.Keys) == a.Count {
			more = true
			return false
		}
		examined, last = examined+1, key
		if g == nil || g.Match(key) {
			reply.Keys = append(reply.Keys, key)
		}
		return true
	})
	if err != nil {
		t.Fail(task.CodeUnavailable, fmt.Errorf("scan: %w", err))
		t.Value = t.Value[:0]
		return
	}
	reply.Cursor = "0"
	if more {
		reply.Cursor = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	b, _ := json.Marshal(reply)
	t.Value = append(t.Value[:0], b...)
}

// literalPrefix is the part of a glob pattern before its first special character: every key
// it matches starts with it, so the store is read from there only.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[{\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}
