package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Labelled is a result with the name of the workload it belongs to (one line of the JSON lines
// file compare.sh and loss.sh write).
type Labelled struct {
	Workload string `json:"workload"`
	Result
	// Loss is added by bench/loss.sh: the packet loss it applied during the run and what its
	// nftables counters saw.
	Loss *LossCheck `json:"loss,omitempty"`
}

// ReadResults reads JSON lines of Labelled results.
func ReadResults(r io.Reader) ([]Labelled, error) {
	var out []Labelled
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l Labelled
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("result line %q: %w", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Report writes the results of single runs: a table, then one line per result about its
// connections and its costs per operation.
func Report(w io.Writer, results []Result) {
	slices.SortStableFunc(results, func(a, b Result) int { return strings.Compare(a.Server, b.Server) })
	fmt.Fprintf(w, "%-10s %10s %8s %8s %8s %8s %8s %8s %10s %9s  %s\n", "server", "ops/s", "p50µs", "p90µs", "p99µs", "p99.9µs", "maxµs", "steal", "pushes/s", "near-hit", "errors")
	for _, r := range results {
		near := "-"
		if r.NearCache > 0 && r.Ops > 0 {
			near = fmt.Sprintf("%.1f%%", 100*float64(r.NearHits)/float64(r.Ops))
		}
		fmt.Fprintf(w, "%-10s %10.0f %8d %8d %8d %8d %8d %8d %10.0f %9s  %v\n", r.Server, r.OpsPerSec, r.P50, r.P90, r.P99, r.P999, r.Max, r.Steal, float64(r.Pushes)/r.Seconds, near, r.Errors)
	}
	for _, r := range results {
		fmt.Fprintf(w, "%s: %s\n", r.Server, connLine(r))
		if c := costLine(r); c != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Server, c)
		}
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "%s: not measured: %s\n", r.Server, warn)
		}
	}
}

func connLine(r Result) string {
	mode := "one client per session"
	if r.Shared {
		mode = "one client shared by every worker"
	}
	return fmt.Sprintf("%s; %d sessions connected, %d dial retries, %d dial failures, %d sessions lost after connecting",
		mode, r.SessionsUp, r.DialRetries, r.DialFailures, r.SessionsLost)
}

func costLine(r Result) string {
	var parts []string
	if r.ClientCPU > 0 {
		parts = append(parts, fmt.Sprintf("load generator CPU %.1f µs", r.ClientCPU))
	}
	if r.ServerCPU > 0 {
		parts = append(parts, fmt.Sprintf("server CPU %.1f µs", r.ServerCPU))
	}
	if r.ServerSwitches > 0 {
		parts = append(parts, fmt.Sprintf("server context switches %.2f", r.ServerSwitches))
	}
	if r.DatagramsIn > 0 || r.DatagramsOut > 0 {
		parts = append(parts, fmt.Sprintf("server datagrams %.2f in, %.2f out; %.2f stage wake-ups", r.DatagramsIn, r.DatagramsOut, r.Wakeups))
	}
	if len(parts) == 0 {
		return ""
	}
	return "per operation: " + strings.Join(parts, "; ")
}

// workloads returns the workload names in the order they first appear.
func workloads(results []Labelled) []string {
	var out []string
	for _, r := range results {
		if !slices.Contains(out, r.Workload) {
			out = append(out, r.Workload)
		}
	}
	return out
}

// serverNames returns the server names: pipecache's first (pipecache, then its variants by name:
// pipecache-t1, pipecache-t2...), then the others in the order they first appear.
func serverNames(results []Labelled) []string {
	var pc, out []string
	for _, r := range results {
		switch {
		case slices.Contains(pc, r.Server) || slices.Contains(out, r.Server):
		case isPipecache(r.Server):
			pc = append(pc, r.Server)
		default:
			out = append(out, r.Server)
		}
	}
	slices.Sort(pc) // "pipecache" sorts before "pipecache-..."
	return append(pc, out...)
}

// isPipecache says whether a result's server is a pipecached (compare.sh names its variants
// pipecache-NAME).
func isPipecache(server string) bool { return strings.HasPrefix(server, "pipecache") }

// rounds are the results of one server in one table row, with their medians and sums.
type rounds struct {
	n                               int
	ops, serverCPU, clientCPU       float64
	switches                        float64
	in, out, wakeups                float64
	p50, p99, p999                  int64
	steal, errors                   int64
	dialRetries, dialFailures, lost int64
	opsSum, conflicts               int64 // operations and lost CAS races, summed over the rounds
}

func collect(results []Labelled, keep func(Labelled) bool) rounds {
	var ops, scpu, ccpu, in, out, wake, sw []float64
	var p50, p99, p999 []int64
	var r rounds
	for _, l := range results {
		if !keep(l) {
			continue
		}
		r.n++
		ops, scpu, ccpu = append(ops, l.OpsPerSec), append(scpu, l.ServerCPU), append(ccpu, l.ClientCPU)
		in, out, wake = append(in, l.DatagramsIn), append(out, l.DatagramsOut), append(wake, l.Wakeups)
		sw = append(sw, l.ServerSwitches)
		p50, p99, p999 = append(p50, l.P50), append(p99, l.P99), append(p999, l.P999)
		r.steal += l.Steal
		r.opsSum, r.conflicts = r.opsSum+l.Ops, r.conflicts+l.Conflicts
		for _, v := range l.Errors {
			r.errors += v
		}
		r.dialRetries, r.dialFailures, r.lost = r.dialRetries+l.DialRetries, r.dialFailures+l.DialFailures, r.lost+l.SessionsLost
	}
	if r.n == 0 {
		return r
	}
	r.ops, r.serverCPU, r.clientCPU = median(ops), median(scpu), median(ccpu)
	r.in, r.out, r.wakeups = median(in), median(out), median(wake)
	r.switches = median(sw)
	r.p50, r.p99, r.p999 = median(p50), median(p99), median(p999)
	return r
}

// Summarize prints, per workload, each server's medians over its rounds (ops/s, p50, p99, the
// server's and the load generator's CPU per op, the server's context switches per op,
// pipecached's datagrams and wake-ups per op),
// the errors and steal summed over its rounds, and pipecache's ratio to each other server.
func Summarize(w io.Writer, results []Labelled) {
	servers := serverNames(results)
	for _, wl := range workloads(results) {
		fmt.Fprintf(w, "\n%s\n", wl)
		fmt.Fprintf(w, "| server | rounds | ops/s (median) | p50 µs | p99 µs | server CPU µs/op | server context switches per op | load generator CPU µs/op | server datagrams in / out per op | stage wake-ups per op | errors | steal jiffies | pipecache ops/s ÷ this |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		rows := map[string]rounds{}
		for _, s := range servers {
			if r := collect(results, func(l Labelled) bool { return l.Workload == wl && l.Server == s }); r.n > 0 {
				rows[s] = r
			}
		}
		for _, s := range servers {
			r, ok := rows[s]
			if !ok {
				continue
			}
			ratio := "-"
			if pc, ok := rows["pipecache"]; ok && s != "pipecache" && r.ops > 0 {
				ratio = fmt.Sprintf("%.2f", pc.ops/r.ops)
			}
			dgrams, wake := "-", "-"
			if r.in > 0 || r.out > 0 {
				dgrams, wake = fmt.Sprintf("%.2f / %.2f", r.in, r.out), fmt.Sprintf("%.2f", r.wakeups)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %d | %d | %s | %s | %.1f | %s | %s | %d | %d | %s |\n", s, r.n, r.ops, r.p50, r.p99,
				orDash(r.serverCPU), switches(r.switches), r.clientCPU, dgrams, wake, r.errors, r.steal, ratio)
		}
		conflictsNote(w, servers, rows)
		variantRatios(w, servers, rows)
	}
}

// variantRatios says, under a table with pipecached variants (compare.sh's THREADS, VARIANTS),
// each variant's ops/s against every other server's.
func variantRatios(w io.Writer, servers []string, rows map[string]rounds) {
	var lines []string
	for _, v := range servers {
		pv, ok := rows[v]
		if !ok || v == "pipecache" || !isPipecache(v) {
			continue
		}
		var parts []string
		for _, o := range servers {
			if r, ok := rows[o]; ok && !isPipecache(o) && r.ops > 0 {
				parts = append(parts, fmt.Sprintf("%.2fx %s", pv.ops/r.ops, o))
			}
		}
		if len(parts) > 0 {
			lines = append(lines, fmt.Sprintf("%s: %s", v, strings.Join(parts, ", ")))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nops/s against the others: %s\n", strings.Join(lines, "; "))
	}
}

// conflictsNote says, under a table, how many CAS races each server's operations lost (a CAS
// workload, or zincr by CAS), if any did.
func conflictsNote(w io.Writer, servers []string, rows map[string]rounds) {
	var parts []string
	for _, s := range servers {
		if r, ok := rows[s]; ok && r.conflicts > 0 && r.opsSum > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", s, float64(r.conflicts)/float64(r.opsSum)))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "\nLost CAS races per operation (each one more round trip or two): %s\n", strings.Join(parts, ", "))
	}
}

// switches writes context switches per op with the precision the targets need (0.3 per get).
func switches(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func median[T int64 | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
