package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// plannerEnv is a real API with the planner on a loopback port, an owner
// and an API token holding planner:read.
type plannerEnv struct {
	b      *testing.B
	st     *store.Store
	base   string
	client *http.Client
	token  string
	orgID  string
}

func newPlannerEnv(b *testing.B) *plannerEnv {
	b.Helper()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	plan, err := capacity.New(st, capacity.Config{})
	if err != nil {
		b.Fatal(err)
	}
	e := servePlanner(b, st, plan, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var tok struct {
		Token string `json:"token"`
	}
	e.post("/v1/api-tokens", map[string]any{"name": "bench", "scopes": []string{"planner:read"}}, &tok)
	e.token = tok.Token
	return e
}

// servePlanner serves the API with the planner on loopback until the
// benchmark ends and signs in its bootstrap user (e.token is the session).
func servePlanner(b *testing.B, st *store.Store, plan *capacity.Service, logger *slog.Logger) *plannerEnv {
	b.Helper()
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: bytes.Repeat([]byte{1}, seal.KeySize),
		Identity:  identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: logger, Planner: plan,
	})
	if err != nil {
		b.Fatal(err)
	}
	e := &plannerEnv{b: b, st: st, base: listen(b, srv), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	e.post("/v1/auth/bootstrap", creds, &boot)
	e.orgID = boot.Organization.ID
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	e.post("/v1/auth/login", creds, &sess)
	e.token = sess.AccessToken
	return e
}

// post sends body and decodes the answer into out (when not nil); the
// request's latency is returned.
func (e *plannerEnv) post(path string, body, out any) time.Duration {
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.base+path, bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		e.b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		e.b.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		e.b.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.b.Fatal(err)
		}
	}
	return elapsed
}

// percentiles reports the median and the 99th percentile of ds in ms.
func percentiles(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(int(q*float64(len(ds))), len(ds)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}

// BenchmarkSuggestFit is POST /v1/planner/suggest-fit end to end over
// loopback for an organization with 10,000 nodes (three regions, some
// cordoned or in maintenance) holding 100,000 placed instances: one query
// reads the nodes with their aggregated reservations (the instance rows are
// never read), the planner scores them, and the answer lists the best 20
// fits and 20 rejected nodes with the counts by reason. "all_listed" asks
// for every node in the answer (limit 10,000: about 2 MB of JSON).
func BenchmarkSuggestFit(b *testing.B) {
	e := newPlannerEnv(b)
	ctx := context.Background()
	start := time.Now()
	if _, err := e.st.Pool.Exec(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status, labels)
		SELECT $1, 'node-' || lpad(g::text, 5, '0'), 'hetzner', (ARRAY['fsn1', 'nbg1', 'hel1'])[g % 3 + 1],
		       (ARRAY['cx43', 'cx53', 'ccx33'])[g % 3 + 1], (ARRAY[8, 16, 8])[g % 3 + 1], (ARRAY[16384, 32768, 32768])[g % 3 + 1], (ARRAY[160, 320, 240])[g % 3 + 1],
		       CASE WHEN g % 50 = 0 THEN 'cordoned' WHEN g % 97 = 0 THEN 'maintenance' ELSE 'ready' END,
		       jsonb_build_object('game', (ARRAY['valheim', 'minecraft', 'rust', 'cs2'])[g % 4 + 1], 'tier', (g % 2)::text)
		FROM generate_series(1, 10000) g`, e.orgID); err != nil {
		b.Fatal(err)
	}
	// 100,000 instances: 0 to 21 per node (10 on average), of a few sizes.
	if _, err := e.st.Pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
		SELECT n.organization_id, n.id, 'gs-' || n.rn || '-' || k, 'valheim',
		       (ARRAY[250, 500, 1000])[k % 3 + 1], (ARRAY[512, 1024, 1536])[k % 3 + 1], (ARRAY[2, 5, 10])[k % 3 + 1]
		FROM (SELECT id, organization_id, row_number() OVER (ORDER BY name) AS rn FROM nodes WHERE organization_id = $1) n,
		     generate_series(1, 21) k
		WHERE k <= (n.rn * 7919) % 22
		LIMIT 100000`, e.orgID); err != nil {
		b.Fatal(err)
	}
	if _, err := e.st.Pool.Exec(ctx, "VACUUM ANALYZE nodes"); err != nil {
		b.Fatal(err)
	}
	var instances, placed int
	if err := e.st.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM instances), (SELECT sum(instance_count) FROM nodes)").Scan(&instances, &placed); err != nil {
		b.Fatal(err)
	}
	if instances != 100_000 || placed != instances {
		b.Fatalf("%d instances, %d counted on nodes", instances, placed)
	}
	b.Logf("seeded 10,000 nodes and %d instances in %v", instances, time.Since(start).Round(time.Millisecond))

	for _, bc := range []struct {
		name string
		body map[string]any
	}{
		{"binpack_region", map[string]any{"cpu": 1, "memory_gb": 4, "disk_gb": 20, "region": "fsn1", "strategy": "binpack"}},
		{"spread_labels", map[string]any{"cpu": 0.5, "memory_gb": 2, "disk_gb": 10, "labels": map[string]string{"game": "valheim"}, "strategy": "spread"}},
		{"all_listed", map[string]any{"cpu": 1, "memory_gb": 4, "disk_gb": 20, "strategy": "binpack", "limit": 10_000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e.b = b
			var res struct {
				Nodes         int `json:"nodes"`
				FitsTotal     int `json:"fits_total"`
				RejectedTotal int `json:"rejected_total"`
			}
			e.post("/v1/planner/suggest-fit", bc.body, &res)
			if res.Nodes != 10_000 || res.FitsTotal == 0 || res.RejectedTotal == 0 {
				b.Fatalf("nodes %d, fits %d, rejected %d", res.Nodes, res.FitsTotal, res.RejectedTotal)
			}
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, e.post("/v1/planner/suggest-fit", bc.body, nil))
			}
			percentiles(b, ds)
		})
	}
}

// BenchmarkRecommend is POST /v1/planner/recommend end to end over loopback:
// 50 Paper servers of 20 players, ranked over the whole embedded catalog
// (every provider and region, deprecated types included) with the default
// answer of 20 options.
func BenchmarkRecommend(b *testing.B) {
	e := newPlannerEnv(b)
	for _, bc := range []struct {
		name, path string
		body       map[string]any
	}{
		{"resources", "/v1/planner/recommend", map[string]any{"cpu": 1, "memory_gb": 6.5, "disk_gb": 20, "count": 50, "include_deprecated": true}},
		{"template", "/v1/planner/recommend-for-template", map[string]any{"template": "minecraft-java-paper", "players": 20, "count": 50, "include_deprecated": true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e.b = b
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, e.post(bc.path, bc.body, nil))
			}
			percentiles(b, ds)
		})
	}
}
