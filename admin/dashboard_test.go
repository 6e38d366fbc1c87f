package admin_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/daemon"
	"github.com/pipecache/pipecache/internal/pctest"
)

// dashboardFile is the Grafana dashboard shipped for pipecached.
const dashboardFile = "../deploy/grafana-dashboard.json"

var (
	metricName   = regexp.MustCompile(`\b((?:pipecache|process|go)_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	labelMatcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byClause     = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = map[string]bool{"instance": true, "job": true, "le": true}

// TestDashboardQueriesNameMetricsThatExist: every query of deploy/grafana-dashboard.json
// (panels and template variables) names only metrics a running daemon exports, with labels
// they have, so that the dashboard shows no empty panel for want of a metric.
func TestDashboardQueriesNameMetricsThatExist(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash any
	require.NoError(t, json.Unmarshal(b, &dash))
	queries := dashboardQueries(dash)
	require.NotEmpty(t, queries)

	d, srv := startDaemon(t, daemon.Config{})
	c, err := client.Dial(d.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Set(pctest.Context(t), "k", []byte("v")) // so that there are per-op series
	require.NoError(t, err)
	m := scrape(t, srv)

	for _, q := range queries {
		labels := map[string]bool{}
		names := metricName.FindAllStringSubmatch(q, -1)
		assert.NotEmpty(t, names, "query names no metric: %s", q)
		for _, n := range names {
			fam := dashboardFamily(m, n[1])
			if !assert.NotNil(t, fam, "%s: no metric %s", q, n[1]) {
				continue
			}
			have := familyLabels(fam)
			for l := range have {
				labels[l] = true
			}
			for _, lm := range labelMatcher.FindAllStringSubmatch(n[2], -1) {
				assert.True(t, have[lm[1]] || scrapeLabels[lm[1]], "%s: %s has no label %s", q, n[1], lm[1])
			}
		}
		for _, by := range byClause.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(by[1], ",") {
				l = strings.TrimSpace(l)
				assert.True(t, labels[l] || scrapeLabels[l], "%s: by %s, a label none of its metrics has", q, l)
			}
		}
	}
}

// dashboardQueries returns every PromQL expression in a dashboard: the targets' expr and the
// template variables' queries.
func dashboardQueries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = append(out, dashboardQueries(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, dashboardQueries(x)...)
		}
	}
	return out
}

// dashboardFamily returns the family a query's series name belongs to: the name itself, or a
// histogram's _bucket, _sum, _count series.
func dashboardFamily(m metrics, name string) *dto.MetricFamily {
	if fam, ok := m[name]; ok {
		return fam
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if fam, ok := m[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) &&
			fam.GetType() == dto.MetricType_HISTOGRAM {
			return fam
		}
	}
	return nil
}

func familyLabels(fam *dto.MetricFamily) map[string]bool {
	have := map[string]bool{}
	for _, s := range fam.Metric {
		for _, l := range s.Label {
			have[l.GetName()] = true
		}
	}
	return have
}
