package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// LossCheck is what bench/loss.sh records about one run: the loss it applied with nftables on
// the input hooks of both network namespaces, and what the rules' counters saw meanwhile, so
// that the table can say whether the rules really dropped what they were meant to.
type LossCheck struct {
	Pattern string  `json:"pattern"`    // the row's name: "5%", "100% for 200 ms every 2 s"
	Random  float64 `json:"random_pct"` // the random rule's drop probability, in percent
	Burst   bool    `json:"burst"`      // a timer switched a drop-everything rule on and off
	Bursts  int     `json:"bursts"`     // how many times it did during the run
	Seen    int64   `json:"seen"`       // packets that reached the input hooks, both sides
	Dropped int64   `json:"dropped"`    // of which the rules dropped
}

// Measured returns the share of packets dropped, in percent.
func (l LossCheck) Measured() float64 {
	if l.Seen == 0 {
		return 0
	}
	return 100 * float64(l.Dropped) / float64(l.Seen)
}

// Confirmed reports whether the counters show the loss asked for: nothing dropped at 0%; a
// random rule's rate within four standard deviations of its probability (binomial, over the
// packets seen), or 10% of it, whichever is wider; and under bursts, at least one burst and some
// drops (the share of packets dropped is not the share of time: while everything is dropped,
// the clients wait and send little). A run that saw fewer than 100 packets confirms nothing.
func (l LossCheck) Confirmed() bool {
	if l.Seen < 100 {
		return false
	}
	if l.Burst {
		return l.Bursts > 0 && l.Dropped > 0
	}
	if l.Random == 0 {
		return l.Dropped == 0
	}
	p := l.Random / 100
	sigma := 100 * math.Sqrt(p*(1-p)/float64(l.Seen))
	return math.Abs(l.Measured()-l.Random) <= max(4*sigma, 0.1*l.Random)
}

// lossRow is one row of the loss table: a loss pattern at a number of requests in flight.
type lossRow struct {
	pattern  string
	inFlight int
}

func lossRows(results []Labelled) []lossRow {
	var rows []lossRow
	for _, r := range results {
		if r.Loss == nil {
			continue
		}
		row := lossRow{r.Loss.Pattern, r.InFlight}
		if !slices.Contains(rows, row) {
			rows = append(rows, row)
		}
	}
	return rows
}

// SummarizeLoss prints the table of bench/loss.sh: one row per loss pattern and number of
// requests in flight, with the drop rate the nftables counters saw (over every run of the row,
// and whether each run's rate confirmed its rule), then for each server the medians over its
// rounds of ops/s, p99 and p99.9, and its errors, dial retries and sessions lost summed.
func SummarizeLoss(w io.Writer, results []Labelled) {
	servers := serverNames(results)
	head := []string{"loss", "in flight", "nft drops seen"}
	for _, s := range servers {
		head = append(head, s+" ops/s", s+" p99 / p99.9 ms")
	}
	for _, s := range servers {
		head = append(head, s+" errors / dial retries / sessions lost")
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	var unconfirmed []string
	for _, row := range lossRows(results) {
		inRow := func(l Labelled) bool {
			return l.Loss != nil && l.Loss.Pattern == row.pattern && l.InFlight == row.inFlight
		}
		cells := []string{row.pattern, fmt.Sprint(row.inFlight), dropsCell(results, inRow, &unconfirmed)}
		var tails []string
		for _, s := range servers {
			r := collect(results, func(l Labelled) bool { return inRow(l) && l.Server == s })
			if r.n == 0 {
				cells = append(cells, "-", "-")
				tails = append(tails, "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.0f", r.ops), ms(r.p99)+" / "+ms(r.p999))
			tails = append(tails, fmt.Sprintf("%d / %d / %d", r.errors, r.dialRetries, r.lost))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(append(cells, tails...), " | "))
	}
	if len(unconfirmed) == 0 {
		fmt.Fprintln(w, "\nnft counters: every run's drops confirm its rule (\"ok\").")
		return
	}
	fmt.Fprintf(w, "\nnft counters did NOT confirm the rule of %d runs: %s\n", len(unconfirmed), strings.Join(unconfirmed, "; "))
}

// dropsCell sums the counters of a row's runs and says "ok" if every run confirmed its rule;
// it appends the runs that did not to unconfirmed.
func dropsCell(results []Labelled, inRow func(Labelled) bool, unconfirmed *[]string) string {
	var all LossCheck
	ok, burst := true, false
	for _, l := range results {
		if !inRow(l) {
			continue
		}
		all.Seen += l.Loss.Seen
		all.Dropped += l.Loss.Dropped
		all.Bursts += l.Loss.Bursts
		burst = burst || l.Loss.Burst
		if !l.Loss.Confirmed() {
			ok = false
			*unconfirmed = append(*unconfirmed, fmt.Sprintf("%s, %d in flight, %s: %.2f%% of %d packets",
				l.Loss.Pattern, l.InFlight, l.Server, l.Loss.Measured(), l.Loss.Seen))
		}
	}
	verdict := "ok"
	if !ok {
		verdict = "NOT CONFIRMED"
	}
	if burst {
		return fmt.Sprintf("%.2f%% of %d in %d bursts, %s", all.Measured(), all.Seen, all.Bursts, verdict)
	}
	return fmt.Sprintf("%.2f%% of %d, %s", all.Measured(), all.Seen, verdict)
}

// ms formats microseconds as milliseconds: one decimal below 100 ms.
func ms(us int64) string {
	if us < 100_000 {
		return fmt.Sprintf("%.1f", float64(us)/1000)
	}
	return fmt.Sprintf("%d", (us+500)/1000)
}
