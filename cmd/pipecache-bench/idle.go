package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pipecache/pipecache/bench"
)

// idleFlags are the flags of the idle-sessions mode (-idle-sessions N).
type idleFlags struct {
	cfg       bench.IdleConfig
	sourceIPs string
}

func (f *idleFlags) register(fs *flag.FlagSet) {
	c := &f.cfg
	fs.IntVar(&c.Sessions, "idle-sessions", 0, "idle-sessions mode: open this many sessions that only heartbeat (one shared KCP engine, no SDK client each), keep them until -duration, report as it goes")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 30*time.Second, "idle sessions: heartbeat interval proposed in each hello (the server's answer rules)")
	fs.Float64Var(&c.Rate, "rate", 200, "idle sessions: new conversations per second at most (0: unpaced); the server admits 250/s per source address (see -source-ips), 2,000/s in all")
	fs.IntVar(&c.MaxPending, "max-pending", 512, "idle sessions: hellos waiting for their reply at once")
	fs.DurationVar(&c.HelloTimeout, "hello-timeout", 5*time.Second, "idle sessions: give up a hello unanswered this long and open again")
	fs.IntVar(&c.MaxMissed, "max-missed", 2, "idle sessions: heartbeats in a row that may go unanswered before a conversation is given up and its session resumed on a fresh one")
	fs.IntVar(&c.HelloSize, "hello-size", 1000, "idle sessions: bytes of each hello frame (padded; at least 200)")
	fs.IntVar(&c.Sockets, "sockets", 1, "idle sessions: UDP sockets per source address")
	fs.StringVar(&f.sourceIPs, "source-ips", "", "idle sessions: source addresses, spread round robin: a list or range, e.g. 127.0.1.1-127.0.1.64 (every 127/8 address is local on Linux)")
	fs.DurationVar(&c.CompactAfter, "compact-after", 250*time.Millisecond, "idle sessions: release a conversation's KCP state once idle this long (negative: never)")
	fs.DurationVar(&c.StormAt, "storm-at", 0, "idle sessions: when the reconnect storm begins (once every session is open)")
	fs.IntVar(&c.Storm, "storm", 0, "idle sessions: sessions the storm drops and resumes on fresh conversations (0: no storm)")
	fs.Float64Var(&c.StormRate, "storm-rate", 0, "idle sessions: resumes per second at most during the storm (0: as fast as -max-pending allows)")
	fs.DurationVar(&c.Progress, "progress", 5*time.Second, "idle sessions: period of the progress line")
	fs.BoolVar(&c.ServerStats, "server-stats", true, "idle sessions: ask the server for its session count with each progress line")
	fs.BoolVar(&c.Goodbye, "goodbye", true, "idle sessions: say goodbye at the end, so the server frees the sessions at once")
}

// finish completes the idle config from the shared flags; called once they are parsed.
func (f *idleFlags) finish(shared *flags) error {
	ips, err := bench.ParseSourceIPs(f.sourceIPs)
	if err != nil {
		return err
	}
	c := &f.cfg
	c.SourceIPs, c.Addr, c.Token, c.PID, c.Duration = ips, shared.cfg.Addr, shared.open.Token, shared.cfg.PID, shared.cfg.Duration
	return nil
}

// runIdle runs the idle-sessions mode and prints its summary.
func runIdle(ctx context.Context, f *flags) int {
	r, err := bench.NewIdle(f.idle.cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 2
	}
	var progress io.Writer = os.Stderr
	if f.quiet {
		progress = nil
	}
	res, err := r.Run(ctx, progress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipecache-bench:", err)
		return 1
	}
	if f.asJSON {
		json.NewEncoder(os.Stdout).Encode(struct {
			Workload string `json:"workload,omitempty"`
			bench.IdleResult
		}{f.label, res})
	} else {
		bench.ReportIdle(os.Stdout, res)
	}
	return 0
}
