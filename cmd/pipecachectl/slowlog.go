package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pipecache/pipecache/client"
)

const slowlogDoc = "The server keeps the requests that took at least its -slowlog threshold (10 ms by default), " +
	"from their decoding to their reply, the most recent -slowlog-len (128) of them. Each line: the time it took, " +
	"op, key, result code, the client's address and session, when it came, and how long it waited for the stage " +
	"that served it. The admin endpoint serves the same as JSON (/slowlog)."

func runSlowLog(ctx context.Context, e *env, _ []string) (result, error) {
	log, err := e.srv.(*client.Client).SlowLog(ctx)
	if err != nil {
		return nil, err
	}
	return slowlogResult(log), nil
}

// slowlogResult is the server's slow log, newest first.
type slowlogResult []client.SlowRequest

func (r slowlogResult) text(w io.Writer) {
	if len(r) == 0 {
		fmt.Fprintln(w, "(empty slow log)")
		return
	}
	for i, e := range r {
		key := ""
		if e.Key != "" {
			key = " " + quoteArg(e.Key)
		}
		fmt.Fprintf(w, "%d) %v %s%s (%s) from %s", i+1, e.Duration(), e.Op, key, e.Code, e.Client)
		if e.Session != 0 {
			fmt.Fprintf(w, " session %d", e.Session)
		}
		fmt.Fprintf(w, " at %s", e.Time.Local().Format("2006-01-02 15:04:05.000"))
		if e.Stage != "" {
			fmt.Fprintf(w, "; waited %v for %s", time.Duration(e.QueuedUs)*time.Microsecond, e.Stage)
		}
		fmt.Fprintln(w)
	}
}

func (r slowlogResult) raw(w, _ io.Writer) { r.text(w) }

func (r slowlogResult) json() any {
	if r == nil {
		r = slowlogResult{}
	}
	return map[string]any{"slowlog": []client.SlowRequest(r)}
}
