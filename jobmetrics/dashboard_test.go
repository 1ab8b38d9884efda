package jobmetrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/jobmetrics"
)

// TestGrafanaDashboard: deploy/grafana/shardform.json is a dashboard
// Grafana can import (panels with Prometheus targets), and every metric
// its queries use is one shardform exports (jobmetrics or the API's HTTP
// metrics), so a renamed metric cannot leave it blank.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/shardform.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) < 6 {
		t.Fatalf("dashboard %q (%q) with %d panels", d.Title, d.UID, len(d.Panels))
	}
	// The collector's own names (a histogram also as _bucket, _sum and
	// _count), and the API's HTTP metrics (api/middleware.go).
	exported := map[string]bool{"shardform_http_requests_total": true, "shardform_http_request_duration_seconds_bucket": true}
	descs := make(chan *prometheus.Desc, 16)
	jobmetrics.New(nil, nil).Describe(descs)
	jobmetrics.NewTerraform(nil).Describe(descs)
	jobmetrics.NewSignLatency().Collector().Describe(descs)
	close(descs)
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("desc %s", d)
		}
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			exported[m[1]+suffix] = true
		}
	}
	metric := regexp.MustCompile(`shardform_[a-z_]+`)
	for _, p := range d.Panels {
		if p.Type == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q has no type or no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q uses no shardform metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: %s is not a metric shardform exports", p.Title, n)
				}
			}
		}
	}
}
