package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// plannerJobs is an API whose planner runs its jobs (pricing_refresh,
// fleet_report) on real River workers, with live Hetzner pricing read from
// a local fake of the hcloud API.
type plannerJobs struct {
	*bundle
	client *river.Client[pgx.Tx]
}

func setupPlannerJobs(t *testing.T, hcloudEndpoint string, threshold *int) *plannerJobs {
	t.Helper()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{42}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.New(st, sealer, nil)
	plan, err := capacity.New(st, capacity.Config{
		Live:    []capacity.PricingSource{providers.HetznerPricing{Endpoint: hcloudEndpoint}},
		Secrets: creds, FleetSavingThresholdPercent: threshold,
	})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := worker.NewClient(pool, st, worker.Options{Work: true, Planner: plan, FetchPollInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	plan.UseQueue(client)
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: key, Planner: plan, Credentials: creds, Version: "test", Logger: logger, Docs: testDocs,
		Identity: identity.Options{AllowRegistration: true, Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &plannerJobs{bundle: &bundle{t: t, srv: srv, pool: pool, contract: &contract{}}, client: client}
}

// eventually polls check until it holds or the deadline passes.
func (b *bundle) eventually(what string, check func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refreshesIdle waits until no pricing_refresh job is waiting or running.
func (b *bundle) refreshesIdle() {
	b.t.Helper()
	b.eventually("pricing refreshes to end", func() bool {
		return b.count(`SELECT count(*) FROM river_job WHERE kind = 'pricing_refresh'
			AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled')`) == 0
	})
}

// addHetznerCredential stores a hetzner credential (the organization's
// first, so its default) and returns its id.
func (b *bundle) addHetznerCredential(a account, token string) string {
	b.t.Helper()
	r := b.expect(req{method: "POST", path: "/v1/credentials", token: a.access,
		body: map[string]any{"name": "hetzner-main", "provider": "hetzner", "secret": map[string]string{"token": token}}}, 201)
	return r.str("id")
}

// liveStatus returns the hetzner entry of catalog.live in a pricing answer.
func liveStatus(r response) map[string]any {
	live, _ := r.Body["catalog"].(map[string]any)["live"].([]any)
	for _, l := range live {
		if m := l.(map[string]any); m["provider"] == "hetzner" {
			return m
		}
	}
	return nil
}

func TestPlannerPricingRefresh(t *testing.T) {
	t.Parallel()
	fake := hcloudfake.New(t, hcloudfake.Options{})
	b := setupPlannerJobs(t, fake.URL, nil)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	reader := b.apiToken(a, "planner:read")
	writer := b.apiToken(a, "planner:read", "planner:write")
	pricing := func(tok, query string) response {
		t.Helper()
		return b.expect(req{method: "GET", path: "/v1/planner/pricing?limit=100&" + query, token: tok}, 200)
	}

	// Before any credential: the snapshot, and nothing to refresh with.
	if r := pricing(reader, "provider=hetzner"); r.Body["catalog"].(map[string]any)["source"] != "snapshot" || liveStatus(r) != nil {
		t.Fatalf("catalog %v", r.Body["catalog"])
	}
	r := b.expect(req{method: "POST", path: "/v1/planner/pricing/refresh", token: writer}, 422)
	if !strings.Contains(r.errMsg(), "credential") {
		t.Errorf("422 message %q", r.errMsg())
	}
	r = b.expect(req{method: "POST", path: "/v1/planner/pricing/refresh", token: reader}, 403)
	if !strings.Contains(r.errMsg(), "planner:write") {
		t.Errorf("403 message %q", r.errMsg())
	}

	credID := b.addHetznerCredential(a, hcloudfake.Token)
	r = b.expect(req{method: "POST", path: "/v1/planner/pricing/refresh", token: writer}, 202)
	if r.Body["kind"] != "pricing_refresh" || r.Body["job_id"].(float64) <= 0 {
		t.Fatalf("refresh answer %s", r.Raw)
	}
	var live response
	b.eventually("the live prices", func() bool {
		live = pricing(reader, "provider=hetzner&include_deprecated=true")
		s := liveStatus(live)
		return s != nil && s["read_at"] != nil
	})
	st := liveStatus(live)
	if st["error"] != nil || st["types"] != float64(12) || st["attempted_at"] != st["read_at"] {
		t.Errorf("live status %v", st)
	}
	if src := live.Body["catalog"].(map[string]any)["source"]; src != "mixed" {
		t.Errorf("catalog source %v, want mixed (live hetzner, snapshot aws and local)", src)
	}
	if total := live.Body["meta"].(map[string]any)["total"]; total != float64(12) {
		t.Errorf("%v hetzner entries, want the fake's 12", total)
	}
	byKey := map[string]map[string]any{}
	for _, it := range live.list() {
		byKey[it["region"].(string)+"/"+it["name"].(string)] = it
		if it["source"] != "live" || it["read_at"] != st["read_at"] {
			t.Errorf("%v/%v: source %v, read at %v", it["region"], it["name"], it["source"], it["read_at"])
		}
	}
	cx23 := byKey["fsn1/cx23"]
	if cx23 == nil || money(t, cx23["hourly"]).Amount() != "0.0056" || money(t, cx23["monthly"]).Amount() != "3.49" || cx23["memory_mib"] != float64(4096) {
		t.Errorf("fsn1/cx23 = %v", cx23)
	}
	if _, ok := byKey["fsn1/cx33"]; ok {
		t.Error("a snapshot-only hetzner type survived the live overlay")
	}
	if cpx := byKey["hel1/cpx11"]; cpx == nil || cpx["deprecation"] == nil {
		t.Errorf("hel1/cpx11 (deprecated there) = %v", cpx)
	}
	// Other providers keep the snapshot.
	for _, it := range pricing(reader, "provider=aws").list() {
		if it["source"] != "snapshot" {
			t.Fatalf("aws entry %v", it)
		}
	}

	t.Run("recommend uses the live prices", func(t *testing.T) {
		r := b.expect(req{method: "POST", path: "/v1/planner/recommend", token: reader,
			body: map[string]any{"cpu": 1, "memory_gb": 1, "disk_gb": 10, "count": 4, "providers": []string{"hetzner"}, "regions": []string{"fsn1"}}}, 200)
		opts := r.Body["options"].([]any)
		if len(opts) == 0 || r.Body["catalog_source"] != "mixed" {
			t.Fatalf("%s", r.Raw)
		}
		first := opts[0].(map[string]any)
		// The cheapest available live fsn1 type: cx23 at 3.49 (the deprecated cx22 is left out).
		if first["type"] != "cx23" || money(t, first["node_monthly_listed"]).Amount() != "3.49" {
			t.Errorf("first option %v", first)
		}
	})

	t.Run("another organization keeps the snapshot", func(t *testing.T) {
		otherTok := b.apiToken(other, "planner:read")
		r := pricing(otherTok, "provider=hetzner")
		if r.Body["catalog"].(map[string]any)["source"] != "snapshot" || liveStatus(r) != nil {
			t.Errorf("catalog %v", r.Body["catalog"])
		}
		for _, it := range r.list() {
			if it["source"] != "snapshot" {
				t.Fatalf("entry %v", it)
			}
		}
	})

	t.Run("a refused token is reported and the last good read stays", func(t *testing.T) {
		b.expect(req{method: "PUT", path: "/v1/credentials/" + credID, token: a.access,
			body: map[string]any{"secret": map[string]string{"token": "revoked-token-0000"}}}, 200)
		before := fake.Refused.Load()
		// The previous refresh may still be completing: a request while it
		// is active would be answered as its duplicate.
		b.refreshesIdle()
		// The last good read as it stands now (the worker's own refresh at
		// start may have read again since the first check).
		last := liveStatus(pricing(reader, "provider=hetzner&include_deprecated=true"))
		if r := b.expect(req{method: "POST", path: "/v1/planner/pricing/refresh", token: writer}, 202); r.Body["duplicate"] == true {
			t.Fatalf("the refresh was taken for an active one: %s", r.Raw)
		}
		var r response
		// This refresh's attempt (a refresh the credential change queued
		// may have recorded the same error before last was read).
		b.eventually("the recorded error", func() bool {
			r = pricing(reader, "provider=hetzner&include_deprecated=true")
			s := liveStatus(r)
			return s != nil && s["error"] != nil && s["attempted_at"] != last["attempted_at"]
		})
		s := liveStatus(r)
		if msg := s["error"].(string); !strings.Contains(msg, "unauthorized") || strings.Contains(msg, "revoked-token") {
			t.Errorf("error %q: want hcloud's unauthorized, never the token", msg)
		}
		if s["read_at"] != last["read_at"] || s["attempted_at"] == last["attempted_at"] || s["types"] != float64(12) {
			t.Errorf("status after the failure %v (before %v)", s, last)
		}
		if r.Body["catalog"].(map[string]any)["source"] != "mixed" || r.Body["meta"].(map[string]any)["total"] != float64(12) {
			t.Errorf("the last good read is no longer used: %v", r.Body["catalog"])
		}
		if fake.Refused.Load() <= before {
			t.Error("the fake refused nothing")
		}
		// Refused is final: the job is cancelled, not retried.
		b.eventually("the cancelled job", func() bool {
			return b.count("SELECT count(*) FROM river_job WHERE kind = 'pricing_refresh' AND state = 'cancelled'") == 1
		})
	})
}

func TestPlannerPricingRefreshRefusedUsesSnapshot(t *testing.T) {
	t.Parallel()
	fake := hcloudfake.New(t, hcloudfake.Options{})
	b := setupPlannerJobs(t, fake.URL, nil)
	a := b.bootstrap("ops@example.com")
	b.addHetznerCredential(a, "wrong-token-123456")
	b.expect(req{method: "POST", path: "/v1/planner/pricing/refresh", token: a.access}, 202)
	var r response
	b.eventually("the recorded error", func() bool {
		r = b.expect(req{method: "GET", path: "/v1/planner/pricing?provider=hetzner&region=fsn1&limit=100", token: a.access}, 200)
		s := liveStatus(r)
		return s != nil && s["error"] != nil
	})
	s := liveStatus(r)
	if !strings.Contains(s["error"].(string), "unable to authenticate") || s["read_at"] != nil || s["types"] != float64(0) {
		t.Errorf("live status %v", s)
	}
	if r.Body["catalog"].(map[string]any)["source"] != "snapshot" {
		t.Errorf("catalog %v", r.Body["catalog"])
	}
	names := []string{}
	for _, it := range r.list() {
		names = append(names, it["name"].(string))
		if it["source"] != "snapshot" {
			t.Errorf("entry %v", it)
		}
	}
	if !slices.Contains(names, "cx33") {
		t.Errorf("snapshot types %v", names)
	}
}

func TestPlannerPricingRefreshPeriodic(t *testing.T) {
	t.Parallel()
	fake := hcloudfake.New(t, hcloudfake.Options{})
	b := setupPlannerJobs(t, fake.URL, nil)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	third := b.register("nocloud@example.com") // no credential: not refreshed
	b.addHetznerCredential(a, hcloudfake.Token)
	b.addHetznerCredential(other, hcloudfake.Token)
	// The fan-out the worker ran at start (RunOnStart) may still be active,
	// possibly from before the credentials existed: wait for it to end, or
	// the insert below would be skipped as its duplicate.
	b.refreshesIdle()
	// What the hourly periodic job inserts: the fan-out.
	res, err := b.client.Insert(context.Background(), capacity.PricingRefreshArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.UniqueSkippedAsDuplicate {
		t.Fatal("the fan-out was skipped as a duplicate")
	}
	for _, acc := range []account{a, other} {
		b.eventually("the refresh of "+acc.email, func() bool {
			r := b.expect(req{method: "GET", path: "/v1/planner/pricing?limit=1", token: acc.access}, 200)
			s := liveStatus(r)
			return s != nil && s["read_at"] != nil
		})
	}
	r := b.expect(req{method: "GET", path: "/v1/planner/pricing?limit=1", token: third.access}, 200)
	if liveStatus(r) != nil {
		t.Errorf("an organization without a credential was refreshed: %v", r.Body["catalog"])
	}
}

// fleetNode is a node of the fleet report test: cx43-sized (8 vCPU,
// 16 GiB, 160 GB) with instances of 1 core, 2 GiB and 10 GB.
type fleetNode struct {
	name, region, status, instanceType string
	instances                          int
}

func (b *bundle) insertFleet(orgID string, nodes []fleetNode) {
	b.t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		var id string
		if err := b.pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status)
			VALUES ($1, $2, 'hetzner', $3, $4, 8, 16384, 160, $5) RETURNING id`, orgID, n.name, n.region, n.instanceType, n.status).Scan(&id); err != nil {
			b.t.Fatal(err)
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
			SELECT $1, $2, $3 || '-gs-' || g, 'valheim', 1000, 2048, 10 FROM generate_series(1, $4::int) g`, orgID, id, n.name, n.instances); err != nil {
			b.t.Fatal(err)
		}
	}
}

func TestPlannerFleetReport(t *testing.T) {
	t.Parallel()
	b := setupPlannerJobs(t, "", nil)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	reader := b.apiToken(a, "planner:read")
	writer := b.apiToken(a, "planner:read", "planner:write")

	r := b.expect(req{method: "GET", path: "/v1/planner/fleet-report", token: reader}, 404)
	if !strings.Contains(r.errMsg(), "POST /v1/planner/fleet-report") {
		t.Errorf("404 message %q", r.errMsg())
	}
	// Five cx43 nodes: two busy (6 instances each) and two nearly empty in
	// fsn1, one nearly empty alone in nbg1, plus a cordoned one and one in
	// maintenance (never emptied, never targets).
	b.insertFleet(a.orgID, []fleetNode{
		{"big-1", "fsn1", "ready", "cx43", 6},
		{"big-2", "fsn1", "ready", "cx43", 6},
		{"small-1", "fsn1", "ready", "cx43", 1},
		{"small-2", "fsn1", "ready", "cx43", 1},
		{"lonely", "nbg1", "ready", "cx43", 1},
		{"cordoned", "fsn1", "cordoned", "cx43", 1},
		{"repair", "fsn1", "maintenance", "cx43", 0},
	})
	// The snapshot prices cx43 at 0.021 EUR an hour × 730 = 15.33 EUR a
	// month (1 EUR = 1.16 USD: 17.7828 USD).

	r = b.expect(req{method: "POST", path: "/v1/planner/fleet-report", token: reader}, 403)
	if !strings.Contains(r.errMsg(), "planner:write") {
		t.Errorf("403 message %q", r.errMsg())
	}
	waitReport := func(jobID float64) response {
		t.Helper()
		var rep response
		b.eventually("the fleet report", func() bool {
			rep = b.do(req{method: "GET", path: "/v1/planner/fleet-report", token: reader})
			return rep.Status == 200 && rep.Body["job_id"] == jobID
		})
		return rep
	}
	job := b.expect(req{method: "POST", path: "/v1/planner/fleet-report", token: writer}, 202)
	if job.Body["kind"] != "fleet_report" {
		t.Fatalf("%s", job.Raw)
	}
	rep := waitReport(job.Body["job_id"].(float64))

	if rep.Body["worthwhile"] != true || rep.Body["threshold_percent"] != float64(20) || rep.Body["currency"] != "EUR" || rep.Body["unpriced_nodes"] != float64(0) {
		t.Errorf("report %s", rep.Raw)
	}
	// Every node is paid for, cordoned and in maintenance too: 7 × 15.33 =
	// 107.31 EUR; emptying small-1 and small-2 saves 2 × 15.33 = 30.66 EUR
	// (28.57%, over the default 20%).
	if got := money(t, rep.Body["monthly_cost"]).String(); got != "107.31 EUR" {
		t.Errorf("monthly cost %s, want 7 × 15.33 = 107.31 EUR", got)
	}
	if got := money(t, rep.Body["potential_saving"]).String(); got != "30.66 EUR" {
		t.Errorf("saving %s, want 2 × 15.33 = 30.66 EUR", got)
	}
	if nodes := rep.Body["nodes"].([]any); len(nodes) != 7 {
		t.Errorf("%d nodes in the report", len(nodes))
	}
	var emptied, targets []string
	for _, e := range rep.Body["emptiable"].([]any) {
		e := e.(map[string]any)
		emptied = append(emptied, e["name"].(string))
		if e["drain_url"] != "/v1/nodes/"+e["id"].(string)+"/drain" {
			t.Errorf("emptiable %v: drain_url %v", e["name"], e["drain_url"])
		}
		for _, m := range e["moves"].([]any) {
			m := m.(map[string]any)
			targets = append(targets, m["to_name"].(string))
			if !strings.HasPrefix(m["name"].(string), e["name"].(string)+"-gs-") {
				t.Errorf("move %v", m)
			}
		}
	}
	slices.Sort(emptied)
	slices.Sort(targets)
	if !slices.Equal(emptied, []string{"small-1", "small-2"}) || rep.Body["moves"] != float64(2) {
		t.Errorf("emptied %v with %v moves", emptied, rep.Body["moves"])
	}
	for _, to := range targets {
		if to != "big-1" && to != "big-2" {
			t.Errorf("moved onto %s", to)
		}
	}
	if c := rep.Body["catalog"].(map[string]any); c["source"] != "snapshot" {
		t.Errorf("catalog %v", c)
	}

	t.Run("a higher threshold proposes nothing", func(t *testing.T) {
		job := b.expect(req{method: "POST", path: "/v1/planner/fleet-report", token: writer, body: map[string]any{"threshold_percent": 50, "currency": "usd"}}, 202)
		rep := waitReport(job.Body["job_id"].(float64))
		if rep.Body["worthwhile"] != false || len(rep.Body["emptiable"].([]any)) != 0 || rep.Body["threshold_percent"] != float64(50) || rep.Body["currency"] != "USD" {
			t.Errorf("report %s", rep.Raw)
		}
		// Each node converted once: 15.33 × 1.16 = 17.7828 USD; 2 nodes'
		// saving 35.5656 USD of 7 nodes' 124.4796 USD (28.57% < 50%).
		if s := money(t, rep.Body["potential_saving"]).String(); s != "35.5656 USD" {
			t.Errorf("saving %s, want 2 × 17.7828 = 35.5656 USD", s)
		}
		if c := money(t, rep.Body["monthly_cost"]).String(); c != "124.4796 USD" {
			t.Errorf("monthly cost %s, want 7 × 17.7828 = 124.4796 USD", c)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tt := range []struct {
			body  any
			field string
		}{
			{map[string]any{"threshold_percent": 101}, "threshold_percent"},
			{map[string]any{"threshold_percent": -1}, "threshold_percent"},
			{map[string]any{"currency": "XYZ"}, "currency"},
			{map[string]any{"nodes": 3}, "nodes"},
			{map[string]any{"threshold_percent": "high"}, "threshold_percent"},
		} {
			r := b.expect(req{method: "POST", path: "/v1/planner/fleet-report", token: writer, body: tt.body}, 400)
			if !strings.Contains(r.errMsg(), tt.field) {
				t.Errorf("%v: message %q does not name %s", tt.body, r.errMsg(), tt.field)
			}
		}
	})

	t.Run("another organization sees none", func(t *testing.T) {
		b.expect(req{method: "GET", path: "/v1/planner/fleet-report", token: other.access}, 404)
	})

	t.Run("the server's threshold applies by default", func(t *testing.T) {
		t.Parallel()
		threshold := 45
		b := setupPlannerJobs(t, "", &threshold)
		a := b.bootstrap("ops@example.com")
		b.insertFleet(a.orgID, []fleetNode{
			{"big-1", "fsn1", "ready", "cx43", 6},
			{"big-2", "fsn1", "ready", "cx43", 6},
			{"small-1", "fsn1", "ready", "cx43", 1},
			{"small-2", "fsn1", "ready", "cx43", 1},
			{"lonely", "nbg1", "ready", "unknown-type", 1},
		})
		job := b.expect(req{method: "POST", path: "/v1/planner/fleet-report", token: a.access}, 202)
		var rep response
		b.eventually("the fleet report", func() bool {
			rep = b.do(req{method: "GET", path: "/v1/planner/fleet-report", token: a.access})
			return rep.Status == 200 && rep.Body["job_id"] == job.Body["job_id"]
		})
		// 2 of 4 priced nodes: 50% > 45%; the unknown type counts at zero.
		if rep.Body["threshold_percent"] != float64(45) || rep.Body["worthwhile"] != true || rep.Body["unpriced_nodes"] != float64(1) {
			t.Errorf("report %s", rep.Raw)
		}
	})
}
