package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serverCounters are the pipecached counters the load generator reads from the admin
// endpoint's /metrics, each summed over its labels.
type serverCounters struct {
	in, out float64 // UDP datagrams received and sent
	wakeups float64 // producers waking a sleeping consumer stage (eventfd writes), all queues
}

// The metrics read, by family name; see README.md's admin endpoint table.
const (
	metricDatagramsIn  = "pipecache_transport_received_datagrams_total"
	metricDatagramsOut = "pipecache_transport_sent_datagrams_total"
	metricWakeups      = "pipecache_queue_wakeups_total"
)

// scrapeTimeout bounds one read of /metrics (under packet loss a TCP request can take seconds).
const scrapeTimeout = 5 * time.Second

// scrapeCounters reads url (pipecached's /metrics) once.
func scrapeCounters(ctx context.Context, url string) (serverCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return serverCounters{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return serverCounters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverCounters{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseCounters(resp.Body)
}

// parseCounters reads the counters out of a Prometheus text exposition. A family that is missing
// is an error: the figures would silently read as zero.
func parseCounters(r io.Reader) (serverCounters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return serverCounters{}, fmt.Errorf("metrics: %w", err)
	}
	sum := func(name string) (float64, error) {
		f, ok := families[name]
		if !ok {
			return 0, fmt.Errorf("metrics: no %s", name)
		}
		var v float64
		for _, m := range f.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
		return v, nil
	}
	var c serverCounters
	for _, x := range []struct {
		name string
		dst  *float64
	}{{metricDatagramsIn, &c.in}, {metricDatagramsOut, &c.out}, {metricWakeups, &c.wakeups}} {
		if *x.dst, err = sum(x.name); err != nil {
			return serverCounters{}, err
		}
	}
	return c, nil
}
