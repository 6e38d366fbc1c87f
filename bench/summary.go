package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// Labelled is a result with the name of the workload it belongs to (one line of the JSON lines
// file compare.sh writes).
type Labelled struct {
	Workload string `json:"workload"`
	Result
}

// ReadResults reads JSON lines of Labelled results.
func ReadResults(r io.Reader) ([]Labelled, error) {
	var out []Labelled
	sc := bufio.NewScanner(r)
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

// Summarize prints, per workload, each server's median ops/s, p50 and p99 over its rounds, the
// steal during its rounds, and pipecache's ratio to each other server.
func Summarize(w io.Writer, results []Labelled) {
	var workloads []string
	for _, r := range results {
		if !slices.Contains(workloads, r.Workload) {
			workloads = append(workloads, r.Workload)
		}
	}
	for _, wl := range workloads {
		fmt.Fprintf(w, "\n%s\n", wl)
		fmt.Fprintf(w, "| server | rounds | ops/s (median) | p50 µs | p99 µs | server CPU µs/op | steal jiffies | pipecache ops/s ÷ this |\n|---|---|---|---|---|---|---|---|\n")
		med := map[string]float64{}
		type row struct {
			server            string
			n                 int
			ops               float64
			p50, p99, stealed int64
			cpu               float64
		}
		var rows []row
		for _, server := range Servers {
			var ops []float64
			var p50, p99 []int64
			var cpu []float64
			var steal int64
			for _, r := range results {
				if r.Workload == wl && r.Server == server {
					ops, p50, p99 = append(ops, r.OpsPerSec), append(p50, r.P50), append(p99, r.P99)
					cpu = append(cpu, r.ServerCPU)
					steal += r.Steal
				}
			}
			if len(ops) == 0 {
				continue
			}
			m := median(ops)
			med[server] = m
			rows = append(rows, row{server, len(ops), m, median(p50), median(p99), steal, median(cpu)})
		}
		for _, r := range rows {
			ratio := "-"
			if pc, ok := med["pipecache"]; ok && r.server != "pipecache" && r.ops > 0 {
				ratio = fmt.Sprintf("%.2f", pc/r.ops)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %d | %d | %.1f | %d | %s |\n", r.server, r.n, r.ops, r.p50, r.p99, r.cpu, r.stealed, ratio)
		}
	}
}

func median[T int64 | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
