package jobmetrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shardform/shardform/jobmetrics"
	"github.com/shardform/shardform/store/storetest"
)

// TestCollector: the metrics say what the tables hold: jobs by kind and
// state, the waiting jobs and the oldest one's age per queue, and the last
// hour's Terraform run durations as a histogram.
func TestCollector(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []struct{ kind, queue, state, age string }{
		{"provision_plan", "terraform", "available", "90 seconds"},
		{"provision_plan", "terraform", "available", "10 seconds"},
		{"provision_apply", "terraform", "running", "0 seconds"},
		{"ssh_sign", "ssh", "completed", "0 seconds"},
	} {
		exec(`INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at, finalized_at)
			VALUES ($1, '{}', $2, $3::river_job_state, 5, 1, now() - $4::interval, CASE WHEN $3 = 'completed' THEN now() END)`, j.kind, j.queue, j.state, j.age)
	}
	var org, prov string
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status, request_hash)
		VALUES ($1, 'local', 'local', 'local-small', 'n1', 'applied', '\x00') RETURNING id`, org).Scan(&prov); err != nil {
		t.Fatal(err)
	}
	for _, secs := range []int{1, 3, 40} {
		exec(`INSERT INTO provision_runs (organization_id, provision_id, kind, status, started_at, finished_at)
			VALUES ($1, $2, 'apply', 'succeeded', now() - make_interval(secs => $3), now())`, org, prov, secs)
	}
	exec(`INSERT INTO provision_runs (organization_id, provision_id, kind, status, started_at, finished_at)
		VALUES ($1, $2, 'plan', 'succeeded', now() - interval '3 hours', now() - interval '2 hours')`, org, prov) // older than an hour

	c := jobmetrics.New(pool, nil)
	want := `
# HELP shardform_jobs River jobs by kind and state.
# TYPE shardform_jobs gauge
shardform_jobs{kind="provision_apply",state="running"} 1
shardform_jobs{kind="provision_plan",state="available"} 2
shardform_jobs{kind="ssh_sign",state="completed"} 1
# HELP shardform_queue_available_jobs Jobs waiting for a worker, by queue.
# TYPE shardform_queue_available_jobs gauge
shardform_queue_available_jobs{queue="terraform"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "shardform_jobs", "shardform_queue_available_jobs"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "shardform_queue_oldest_available_seconds":
				if age := m.GetGauge().GetValue(); age < 85 || age > 600 {
					t.Errorf("oldest available job %v s old, want about 90", age)
				}
			case "shardform_terraform_run_duration_seconds":
				found = true
				h := m.GetHistogram()
				got := map[float64]uint64{}
				for _, b := range h.GetBucket() {
					got[b.GetUpperBound()] = b.GetCumulativeCount()
				}
				// 1 s, 3 s and 40 s runs; the plan of 2 hours ago is left out.
				if h.GetSampleCount() != 3 || got[0.5] != 0 || got[1] != 1 || got[2] != 1 || got[5] != 2 || got[30] != 2 || got[60] != 3 || h.GetSampleSum() < 44 || h.GetSampleSum() > 60 {
					t.Errorf("run durations: count %d, sum %v, buckets %v", h.GetSampleCount(), h.GetSampleSum(), got)
				}
				if l := m.GetLabel(); len(l) != 2 || l[0].GetValue() != "apply" || l[1].GetValue() != "succeeded" {
					t.Errorf("run duration labels %v", l)
				}
			}
		}
	}
	if !found {
		t.Error("no run duration histogram")
	}
}
