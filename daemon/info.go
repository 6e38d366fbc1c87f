package daemon

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pipecache/pipecache/admin"
	"github.com/pipecache/pipecache/transport/wire"
)

// The info op (Redis's INFO): the daemon's state as text sections, "# Server" then one
// "name:value" line per field. Its figures are the Snapshot's (the counters the stages publish
// atomically, which the admin endpoint reads too), so the info op, stats and /metrics never
// disagree; Incoming answers it on its own loop (stages.IncomingConfig.Info) and no stage's
// loop is asked for anything.

// infoSection is one section: its name (as the request names it, lower case) and its lines.
type infoSection struct {
	name  string
	title string
	lines func(d *Daemon, s *admin.Snapshot) []infoLine
}

type infoLine struct {
	key, value string
}

func intLine(key string, n int64) infoLine   { return infoLine{key, strconv.FormatInt(n, 10)} }
func uintLine(key string, n uint64) infoLine { return infoLine{key, strconv.FormatUint(n, 10)} }

// infoSections lists the sections in the order an info without a section writes them: the
// protocol's (wire.InfoSections; TestInfoSectionsAreTheProtocols).
var infoSections = []infoSection{
	{"server", "Server", serverLines},
	{"clients", "Clients", clientLines},
	{"memory", "Memory", memoryLines},
	{"persistence", "Persistence", persistenceLines},
	{"keyspace", "Keyspace", keyspaceLines},
	{"stats", "Stats", statLines},
}

// Info is the info op's reply: the text of the section named (in any case), or of every
// section if section is empty, "all" or "default". An unknown name is an error that lists the
// sections. Safe for concurrent use: it reads what Snapshot reads, the runtime's heap
// statistics and /proc/self/statm (as the stats op does).
func (d *Daemon) Info(section string) ([]byte, error) {
	section = strings.ToLower(strings.TrimSpace(section))
	all := section == "" || section == "all" || section == "default"
	s := d.Snapshot()
	var b strings.Builder
	for _, sec := range infoSections {
		if !all && sec.name != section {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "# %s\n", sec.title)
		for _, l := range sec.lines(d, &s) {
			fmt.Fprintf(&b, "%s:%s\n", l.key, l.value)
		}
	}
	if b.Len() == 0 {
		return nil, fmt.Errorf("info: no section %q; the sections are %s (or none: every one)",
			section, strings.Join(wire.InfoSections, ", "))
	}
	return []byte(b.String()), nil
}

func serverLines(d *Daemon, s *admin.Snapshot) []infoLine {
	mode := "single"
	if d.cluster {
		mode = "cluster"
	}
	lines := []infoLine{{"version", s.Version}, {"mode", mode},
		intLine("uptime_in_seconds", int64(s.Uptime.Seconds())), intLine("uptime_ms", s.Uptime.Milliseconds()),
		{"loops", d.p.Mapping.String()}, intLine("loop_count", int64(len(s.Loops)))}
	for i, l := range s.Loops {
		lines = append(lines, infoLine{fmt.Sprintf("loop%d", i),
			fmt.Sprintf("name=%s,utilisation=%.3f", l.Name, l.Utilisation)})
	}
	return lines
}

func clientLines(_ *Daemon, s *admin.Snapshot) []infoLine {
	return []infoLine{intLine("sessions", s.Sessions.Sessions),
		intLine("conversations", int64(s.Incoming.Transport.Conns)),
		intLine("pending_conversations", int64(s.Incoming.Transport.Pending)),
		intLine("subscriptions", s.Sessions.Subscriptions), intLine("max_conns", int64(s.Limits.MaxConns))}
}

func memoryLines(_ *Daemon, s *admin.Snapshot) []infoLine {
	used, budget, heap, rss := s.Cache.Bytes, s.Limits.Memory, heapBytes(), rssBytes()
	return []infoLine{intLine("cache_bytes", used), {"cache_bytes_human", mib(used)},
		intLine("memory_budget_bytes", budget), {"memory_budget_human", mib(budget)},
		intLine("heap_bytes", heap), {"heap_human", mib(heap)},
		intLine("rss_bytes", rss), {"rss_human", mib(rss)},
		uintLine("evictions", s.Cache.Evictions)}
}

func persistenceLines(d *Daemon, s *admin.Snapshot) []infoLine {
	return []infoLine{{"store", d.storeKind}, {"fsync", s.Fsync.String()},
		intLine("pending_writes", d.p.Outgoing.Commits().Committing()),
		intLine("store_unreachable", s.Cache.Unreachable),
		uintLine("store_loads", s.Cache.Loads), uintLine("store_writes", s.Cache.Stores),
		uintLine("store_timeouts", s.Cache.Timeouts)}
}

func keyspaceLines(_ *Daemon, s *admin.Snapshot) []infoLine {
	return []infoLine{intLine("cache_entries", s.Cache.Items), uintLine("expirations", s.Cache.Expirations)}
}

func statLines(_ *Daemon, s *admin.Snapshot) []infoLine {
	c := &s.Cache
	return []infoLine{uintLine("requests", s.Incoming.Requests), uintLine("bad_frames", s.Incoming.BadFrames),
		uintLine("busy", s.Incoming.Busy), uintLine("gets", c.Gets), uintLine("hits", c.Hits),
		uintLine("misses", c.Misses), uintLine("negative_hits", c.NegativeHits), uintLine("sets", c.Sets),
		uintLine("deletes", c.Deletes), uintLine("execs", c.Execs), uintLine("foreign_changes", c.Foreign),
		uintLine("stale_reads", c.StaleReads)}
}
