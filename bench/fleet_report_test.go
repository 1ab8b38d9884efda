package bench

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// newFleetEnv is newPlannerEnv with the planner's River workers running
// (the fleet_report job) and the owner's session token (planner:write).
func newFleetEnv(b *testing.B) (*plannerEnv, *capacity.Service) {
	b.Helper()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	plan, err := capacity.New(st, capacity.Config{})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := worker.NewClient(pool, st, worker.Options{Work: true, Planner: plan, FetchPollInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	plan.UseQueue(client)
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	e := servePlanner(b, st, plan, logger)
	return e, plan
}

// seedFleet inserts 10,000 cx43/cx53/ccx33 nodes in three regions (some
// cordoned or in maintenance) holding 100,000 instances, 0 to 21 per node,
// most nodes lightly used so that consolidation has work to do.
func seedFleet(b *testing.B, e *plannerEnv) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	if _, err := e.st.Pool.Exec(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status)
		SELECT $1, 'node-' || lpad(g::text, 5, '0'), 'hetzner', (ARRAY['fsn1', 'nbg1', 'hel1'])[g % 3 + 1],
		       (ARRAY['cx43', 'cx53', 'ccx33'])[g % 3 + 1], (ARRAY[8, 16, 8])[g % 3 + 1], (ARRAY[16384, 32768, 32768])[g % 3 + 1], (ARRAY[160, 320, 240])[g % 3 + 1],
		       CASE WHEN g % 50 = 0 THEN 'cordoned' WHEN g % 97 = 0 THEN 'maintenance' ELSE 'ready' END
		FROM generate_series(1, 10000) g`, e.orgID); err != nil {
		b.Fatal(err)
	}
	if _, err := e.st.Pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
		SELECT n.organization_id, n.id, 'gs-' || n.rn || '-' || k, 'valheim',
		       (ARRAY[250, 500, 1000])[k % 3 + 1], (ARRAY[512, 1024, 1536])[k % 3 + 1], (ARRAY[2, 5, 10])[k % 3 + 1]
		FROM (SELECT id, organization_id, row_number() OVER (ORDER BY name) AS rn FROM nodes WHERE organization_id = $1) n,
		     generate_series(1, 21) k
		WHERE k <= (n.rn * 7919) % 22
		LIMIT 100000`, e.orgID); err != nil {
		b.Fatal(err)
	}
	if _, err := e.st.Pool.Exec(ctx, "VACUUM ANALYZE nodes, instances"); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded 10,000 nodes and 100,000 instances in %v", time.Since(start).Round(time.Millisecond))
}

// BenchmarkFleetReport is the fleet report of an organization with 10,000
// nodes and 100,000 placed instances (target: under 2 s).
//   - job: what the fleet_report worker does — read every node and instance
//     in one snapshot, price the nodes from the catalog, first-fit
//     decreasing consolidation, encode and store the report (about 2 MB of
//     JSON) — called directly.
//   - api: end to end — POST /v1/planner/fleet-report (202), a River worker
//     picks the job up and runs it, then GET /v1/planner/fleet-report answers
//     the stored report with that job id.
func BenchmarkFleetReport(b *testing.B) {
	e, plan := newFleetEnv(b)
	seedFleet(b, e)
	org := uuid.MustParse(e.orgID)
	ctx := context.Background()

	b.Run("job", func(b *testing.B) {
		e.b = b
		var id int64
		for b.Loop() {
			id++
			if err := plan.RunFleetReport(ctx, capacity.FleetJob{ID: id, Args: capacity.FleetReportArgs{
				OrganizationID: org, Currency: "EUR", ThresholdPercent: plan.ThresholdPercent(),
			}}); err != nil {
				b.Fatal(err)
			}
		}
		rep := latestReport(b, e)
		b.ReportMetric(float64(len(rep.Nodes)), "nodes")
		b.ReportMetric(float64(rep.Moves), "moves")
	})

	b.Run("api", func(b *testing.B) {
		e.b = b
		var ds []time.Duration
		for b.Loop() {
			start := time.Now()
			var job capacity.JobInfo
			e.post("/v1/planner/fleet-report", map[string]any{}, &job)
			for latestReport(b, e).JobID != job.JobID {
				time.Sleep(5 * time.Millisecond)
			}
			ds = append(ds, time.Since(start))
		}
		percentiles(b, ds)
	})
}

// fleetSummary is the part of GET /v1/planner/fleet-report the benchmark
// checks.
type fleetSummary struct {
	JobID int64             `json:"job_id"`
	Nodes []json.RawMessage `json:"nodes"`
	Moves int               `json:"moves"`
}

func latestReport(b *testing.B, e *plannerEnv) fleetSummary {
	b.Helper()
	req, _ := http.NewRequest("GET", e.base+"/v1/planner/fleet-report", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out fleetSummary
	if resp.StatusCode == http.StatusNotFound {
		_, _ = io.Copy(io.Discard, resp.Body)
		return out
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		b.Fatalf("GET fleet report: %d %s", resp.StatusCode, raw)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		b.Fatal(err)
	}
	return out
}
