package main

import (
	"context"
	"io"
	"strings"

	"github.com/pipecache/pipecache/client"
)

var infoDoc = "As Redis's INFO: the server's build, uptime, mode and loops; its sessions; memory; store and " +
	"durability; the keys it caches; its request counters. SECTION is one of " +
	strings.Join(client.InfoSections, ", ") + "; without it, every section. -json: one object per section."

func runInfo(ctx context.Context, e *env, args []string) (result, error) {
	section := ""
	if len(args) > 0 {
		section = args[0]
	}
	text, err := e.srv.(*client.Client).Info(ctx, section)
	if err != nil {
		return nil, err
	}
	return infoResult(text), nil
}

// infoResult is the info op's text, printed as the server wrote it.
type infoResult string

func (r infoResult) text(w io.Writer) { io.WriteString(w, string(r)) }

func (r infoResult) raw(w, _ io.Writer) { r.text(w) }

func (r infoResult) json() any { return client.ParseInfo(string(r)) }
