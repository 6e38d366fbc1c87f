package daemon

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagGroups orders pipecached -h by purpose. Every flag is in exactly one group
// (TestEveryFlagIsInOneHelpGroup).
var flagGroups = []struct {
	title string
	flags []string
}{
	{"Network and clients", []string{"listen", "max-conns", "conn-rate", "source-conn-rate", "pending-memory",
		"idle-timeout", "ack-delay", "max-key", "max-value"}},
	{"Sessions and security", []string{"heartbeat", "auth-tokens", "auth-token-file", "crypt-key-file", "crypt-legacy-cfb"}},
	{"Reverse notification", []string{"push-bytes", "push-memory", "max-subscriptions"}},
	{"Cache and processors", []string{"memory-mb", "memory-limit-mb", "negative-ttl", "proc-budget", "proc-max-steps"}},
	{"Threads (README, \"Threads\")", []string{"threads", "loops"}},
	{"Store", []string{"data-dir", "fsync", "store-timeout", "store-workers"}},
	{"Cluster (a shared store: etcd)", []string{"store", "advertise", "member-ttl", "store-wait", "stale-reads"}},
	{"Operations", []string{"admin", "log-level", "log-format", "slowlog", "slowlog-len", "cpuprofile", "config", "version"}},
	{"Kill switches", []string{"no-negative-cache", "no-ttl-jitter", "no-group-commit", "no-idle-compaction"}},
}

// usage prints every flag, by purpose, with its environment variable and its default. Sizes
// take units (64MiB) and durations theirs (2s, 1500ms); a string's default is quoted, a
// number's is not.
func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `Usage: pipecached [flags]

Every flag but -config and -version can also be set from the environment (the variable named
after it) or from the -config file (TOML: a flag's name = its value). The command line wins
over the environment, which wins over the file. SIGHUP reloads -log-level, -log-format and the
auth tokens from the file; SIGUSR1 switches to debug logs, SIGUSR2 back.
`)
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil {
				printFlag(w, f)
			}
		}
	}
}

func printFlag(w io.Writer, f *flag.Flag) {
	arg, help := flag.UnquoteUsage(f)
	switch kindOf(f) {
	case kindSize:
		arg = "size"
	case kindInt:
		arg = "n"
	}
	fmt.Fprintf(w, "  -%s", f.Name)
	if arg != "" {
		fmt.Fprintf(w, " %s", arg)
	}
	if !noEnv[f.Name] {
		fmt.Fprintf(w, "    $%s", envName(f.Name))
	}
	fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(help, "\n", "\n    \t"))
	switch def := f.DefValue; {
	case def == "" || def == "false" || def == "0" && kindOf(f) != kindString:
	case kindOf(f) == kindString:
		fmt.Fprintf(w, " (default %q)", def)
	default:
		fmt.Fprintf(w, " (default %s)", def)
	}
	fmt.Fprintln(w)
}

// usageHint follows a command line error: one line that says where to look, not the 80 lines of
// -h.
const usageHint = "run 'pipecached -h' for the flags"
