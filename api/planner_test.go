package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shardform/shardform/planner"
)

// plannerAccount is an owner (who holds planner:read) with an API token
// limited to planner:read.
func plannerAccount(t *testing.T) (*bundle, account, string) {
	t.Helper()
	b := setup(t)
	a := b.bootstrap("planner@example.com")
	return b, a, b.apiToken(a, "planner:read")
}

func TestPlannerTemplates(t *testing.T) {
	t.Parallel()
	b, _, tok := plannerAccount(t)
	r := b.expect(req{method: "GET", path: "/v1/planner/templates?limit=100", token: tok}, 200)
	var names []string
	for _, tpl := range r.list() {
		names = append(names, tpl["name"].(string))
		if tpl["milli_cpu"].(float64) <= 0 || tpl["base_memory_mib"].(float64) <= 0 || len(tpl["ports"].([]any)) == 0 || len(tpl["sources"].([]any)) == 0 {
			t.Errorf("template %v lacks figures", tpl)
		}
	}
	for _, want := range []string{"minecraft-java-vanilla", "minecraft-java-paper", "minecraft-bedrock", "valheim", "rust", "cs2", "ark", "palworld", "factorio", "terraria"} {
		if !slices.Contains(names, want) {
			t.Errorf("templates lack %s: %v", want, names)
		}
	}
	meta := r.Body["meta"].(map[string]any)
	if int(meta["total"].(float64)) != len(names) || meta["limit"] != float64(100) {
		t.Errorf("meta %v for %d templates", meta, len(names))
	}
	page := b.expect(req{method: "GET", path: "/v1/planner/templates?limit=2&page=2", token: tok}, 200).list()
	if len(page) != 2 || page[0]["name"] != names[2] {
		t.Errorf("page 2 of 2: %v", page)
	}
	b.expect(req{method: "GET", path: "/v1/planner/templates?limit=0", token: tok}, 400)
}

func TestPlannerPricing(t *testing.T) {
	t.Parallel()
	b, _, tok := plannerAccount(t)
	get := func(query string, status int) response {
		t.Helper()
		return b.expect(req{method: "GET", path: "/v1/planner/pricing?" + query, token: tok}, status)
	}
	all := get("limit=100", 200)
	if src := all.Body["catalog"].(map[string]any)["source"]; src != "snapshot" {
		t.Errorf("catalog source %v", src)
	}
	withDeprecated := get("limit=1&include_deprecated=true", 200)
	total := func(r response) int { return int(r.Body["meta"].(map[string]any)["total"].(float64)) }
	if total(all) == 0 || total(withDeprecated) <= total(all) {
		t.Errorf("totals: %d available, %d with deprecated", total(all), total(withDeprecated))
	}

	tests := []struct {
		name  string
		query string
		check func(t *testing.T, it map[string]any)
	}{
		{"hetzner arm", "provider=hetzner&arch=arm", func(t *testing.T, it map[string]any) {
			if it["provider"] != "hetzner" || it["arch"] != "arm" {
				t.Errorf("got %v", it)
			}
		}},
		{"big dedicated", "min_vcpu=8&min_memory_gb=31.5&cpu_kind=dedicated", func(t *testing.T, it map[string]any) {
			if it["vcpu"].(float64) < 8 || it["memory_mib"].(float64) < 31.5*1024 || it["cpu_kind"] != "dedicated" {
				t.Errorf("got %v", it)
			}
		}},
		{"aws region", "provider=aws&region=eu-central-1", func(t *testing.T, it map[string]any) {
			m := it["monthly"].(map[string]any)
			if it["region"] != "eu-central-1" || m["currency"] != "USD" || m["amount"] == "" {
				t.Errorf("got %v", it)
			}
		}},
		{"deprecated included", "provider=hetzner&include_deprecated=1", func(t *testing.T, it map[string]any) {
			if it["provider"] != "hetzner" {
				t.Errorf("got %v", it)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(tt.query+"&limit=100", 200)
			if len(r.list()) == 0 {
				t.Fatalf("no entries for %s", tt.query)
			}
			for _, it := range r.list() {
				tt.check(t, it)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		p1 := get("limit=3&page=1", 200).list()
		p2 := get("limit=3&page=2", 200).list()
		if len(p1) != 3 || len(p2) != 3 || p1[2]["name"] == p2[0]["name"] && p1[2]["region"] == p2[0]["region"] {
			t.Errorf("pages overlap: %v / %v", p1, p2)
		}
		if far := get("limit=3&page=100000", 200); len(far.list()) != 0 || total(far) != total(all) {
			t.Errorf("past the end: %s", far.Raw)
		}
	})

	bad := []struct{ query, field string }{
		{"provider=gcp", "provider"},
		{"region=mars", "region"},
		{"provider=aws&region=fsn1", "region"},
		{"min_vcpu=-1", "min_vcpu"},
		{"min_vcpu=two", "min_vcpu"},
		{"min_memory_gb=-4", "min_memory_gb"},
		{"min_memory_gb=lots", "min_memory_gb"},
		{"arch=sparc", "arch"},
		{"cpu_kind=turbo", "cpu_kind"},
		{"include_deprecated=maybe", "include_deprecated"},
		{"limit=1000", "limit"},
		{"page=0", "page"},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.query, func(t *testing.T) {
			r := get(tt.query, 400)
			if !strings.HasPrefix(r.errMsg(), tt.field+": ") {
				t.Errorf("error %q does not name %s", r.errMsg(), tt.field)
			}
		})
	}
}

// money reads a {"amount", "currency"} answer exactly.
func money(t *testing.T, v any) planner.Money {
	t.Helper()
	m := v.(map[string]any)
	out, err := planner.ParseMoney(m["amount"].(string), m["currency"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// describeOptions renders recommended options as one line each, with
// their exact amounts, for comparison with hand-worked figures.
func describeOptions(t *testing.T, opts []any) []string {
	t.Helper()
	out := make([]string, len(opts))
	for i, o := range opts {
		o := o.(map[string]any)
		out[i] = fmt.Sprintf("%v %v %v: %v nodes × %v (%v) at %s (%s) = %s, %s each",
			o["provider"], o["region"], o["type"], o["nodes"], o["instances_per_node"], o["limited_by"],
			money(t, o["node_monthly"]), money(t, o["node_monthly_listed"]), money(t, o["total_monthly"]), money(t, o["per_instance_monthly"]))
	}
	return out
}

func TestPlannerRecommend(t *testing.T) {
	t.Parallel()
	b, _, tok := plannerAccount(t)
	recommend := func(body any, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/planner/recommend", token: tok, body: body}, status)
	}
	base := func(mut func(m map[string]any)) map[string]any {
		m := map[string]any{"cpu": 2, "memory_gb": 4, "disk_gb": 20, "count": 10, "providers": []string{"hetzner", "aws"}}
		if mut != nil {
			mut(m)
		}
		return m
	}

	t.Run("ranked options", func(t *testing.T) {
		r := recommend(base(nil), 200)
		opts, _ := r.Body["options"].([]any)
		if len(opts) == 0 || len(opts) > 20 {
			t.Fatalf("%d options: %s", len(opts), r.Raw)
		}
		rates := r.Body["rates"].(map[string]any)
		if r.Body["currency"] != "EUR" || rates["source"] != "default" || rates["base"] != "EUR" {
			t.Errorf("currency %v, rates %v", r.Body["currency"], rates)
		}
		if rates["rates"].(map[string]any)["USD"] == nil {
			t.Errorf("rates used do not include USD (AWS prices): %v", rates)
		}
		// Worked by hand from the snapshot, for 10 × (2 cores, 4 GiB,
		// 20 GiB) at 10% headroom after the 0.1 core, 512 MiB and 4 GiB
		// overhead of each node. cax41 (16 vCPU, 32 GiB, 320 GB; 0.026 EUR/h
		// × 730 = 18.98 EUR): cpu (16000−100)×0.9 = 14310m holds 7, memory
		// (32768−512)×0.9 = 29030 MiB holds 7, disk 291225 MiB holds 14:
		// 2 nodes, 2 × 18.98 = 37.96 EUR, 3.796 a server. cax31 (8 vCPU,
		// 16 GiB, 160 GB; 0.013 × 730 = 9.49 EUR): cpu 7110m holds 3,
		// memory 14284 MiB holds 3: 4 nodes, also 37.96 EUR, ranked after
		// for its 4 nodes. Equal fleets go by region name.
		wantFirst := []string{
			"hetzner fsn1 cax41: 2 nodes × 7 (cpu) at 18.98 EUR (18.98 EUR) = 37.96 EUR, 3.796 EUR each",
			"hetzner hel1 cax41: 2 nodes × 7 (cpu) at 18.98 EUR (18.98 EUR) = 37.96 EUR, 3.796 EUR each",
			"hetzner nbg1 cax41: 2 nodes × 7 (cpu) at 18.98 EUR (18.98 EUR) = 37.96 EUR, 3.796 EUR each",
			"hetzner fsn1 cax31: 4 nodes × 3 (cpu) at 9.49 EUR (9.49 EUR) = 37.96 EUR, 3.796 EUR each",
		}
		if got := describeOptions(t, opts[:min(len(opts), len(wantFirst))]); !slices.Equal(got, wantFirst) {
			t.Errorf("first options\n got %q\nwant %q", got, wantFirst)
		}
		var prev planner.Money
		for i, o := range opts {
			o := o.(map[string]any)
			if o["rank"] != float64(i+1) {
				t.Errorf("option %d has rank %v", i, o["rank"])
			}
			total := money(t, o["total_monthly"])
			if total.Currency != "EUR" {
				t.Errorf("option %d: total %s, want EUR", i, total)
			}
			if i > 0 && total.Cmp(prev) < 0 {
				t.Errorf("option %d (%s) cheaper than option %d (%s)", i, total, i-1, prev)
			}
			prev = total
			if perNode := o["instances_per_node"].(float64); perNode*o["nodes"].(float64) < 10 {
				t.Errorf("option %d does not hold 10 instances: %v", i, o)
			}
		}
		req := r.Body["requirement"].(map[string]any)
		if per := req["per_instance"].(map[string]any); per["milli_cpu"] != float64(2000) || per["memory_mib"] != float64(4096) || req["count"] != float64(10) {
			t.Errorf("requirement %v", req)
		}
	})

	t.Run("in USD with a limit", func(t *testing.T) {
		r := recommend(base(func(m map[string]any) { m["currency"] = "USD"; m["limit"] = 3 }), 200)
		opts := r.Body["options"].([]any)
		if len(opts) != 3 || r.Body["currency"] != "USD" {
			t.Fatalf("%s", r.Raw)
		}
		// The cax41 fleets above at 1 EUR = 1.16 USD: 18.98 × 1.16 =
		// 22.0168 USD a node, × 2 = 44.0336 USD, / 10 = 4.40336 USD each.
		want := []string{
			"hetzner fsn1 cax41: 2 nodes × 7 (cpu) at 22.0168 USD (18.98 EUR) = 44.0336 USD, 4.40336 USD each",
			"hetzner hel1 cax41: 2 nodes × 7 (cpu) at 22.0168 USD (18.98 EUR) = 44.0336 USD, 4.40336 USD each",
			"hetzner nbg1 cax41: 2 nodes × 7 (cpu) at 22.0168 USD (18.98 EUR) = 44.0336 USD, 4.40336 USD each",
		}
		if got := describeOptions(t, opts); !slices.Equal(got, want) {
			t.Errorf("options\n got %q\nwant %q", got, want)
		}
	})

	t.Run("AWS list prices in EUR", func(t *testing.T) {
		r := recommend(base(func(m map[string]any) { m["limit"] = 2; m["providers"] = []string{"aws"} }), 200)
		// t4g.xlarge (4 vCPU, 16 GiB, 50 GB root) in us-east-1: 0.1344 USD/h
		// × 730 = 98.112 + 50 GB × 0.08 = 102.112 USD a month; cpu
		// (4000−100)×0.9 = 3510m holds 1 server of 2 cores: 10 nodes.
		// 102.112 / 1.16 = 88.02758620689… → 88.027586207 EUR (half up),
		// × 10 = 880.27586207 EUR. c7g.2xlarge (8 vCPU, 16 GiB, 50 GB):
		// 0.29 × 730 + 4 = 215.7 USD; disk (51200−4096)×0.9 = 42393 MiB
		// holds 2 of 20480: 5 nodes; 215.7 / 1.16 = 185.94827586206… →
		// 185.948275862 EUR, × 5 = 929.74137931, / 10 = 92.974137931 each.
		want := []string{
			"aws us-east-1 t4g.xlarge: 10 nodes × 1 (cpu) at 88.027586207 EUR (102.112 USD) = 880.27586207 EUR, 88.027586207 EUR each",
			"aws us-east-1 c7g.2xlarge: 5 nodes × 2 (disk) at 185.948275862 EUR (215.70 USD) = 929.74137931 EUR, 92.974137931 EUR each",
		}
		if got := describeOptions(t, r.Body["options"].([]any)); !slices.Equal(got, want) {
			t.Errorf("options\n got %q\nwant %q", got, want)
		}
	})

	t.Run("nothing fits is an answer", func(t *testing.T) {
		r := recommend(base(func(m map[string]any) { m["max_monthly_price"] = "0.01" }), 200)
		if opts := r.Body["options"].([]any); len(opts) != 0 {
			t.Errorf("options under 0.01 EUR: %v", opts)
		}
		rej, _ := r.Body["rejections"].([]any)
		if len(rej) == 0 || !strings.Contains(fmt.Sprint(rej), "max_monthly_price") {
			t.Errorf("rejections %v", rej)
		}
		// The cap as a number and as an object in another currency.
		for _, cap := range []any{0.01, map[string]string{"amount": "0.01", "currency": "USD"}} {
			r := recommend(base(func(m map[string]any) { m["max_monthly_price"] = cap }), 200)
			if opts := r.Body["options"].([]any); len(opts) != 0 {
				t.Errorf("cap %v: options %v", cap, opts)
			}
		}
	})

	t.Run("count defaults to one", func(t *testing.T) {
		r := recommend(base(func(m map[string]any) { delete(m, "count") }), 200)
		if c := r.Body["requirement"].(map[string]any)["count"]; c != float64(1) {
			t.Errorf("count %v", c)
		}
	})

	bad := []struct {
		name  string
		mut   func(m map[string]any)
		field string
	}{
		{"zero cpu", func(m map[string]any) { m["cpu"] = 0 }, "cpu"},
		{"negative memory", func(m map[string]any) { m["memory_gb"] = -1 }, "memory_gb"},
		{"missing disk", func(m map[string]any) { delete(m, "disk_gb") }, "disk_gb"},
		{"zero count", func(m map[string]any) { m["count"] = 0 }, "count"},
		{"count over 10000", func(m map[string]any) { m["count"] = 10_001 }, "count"},
		{"unknown provider", func(m map[string]any) { m["providers"] = []string{"gcp"} }, "providers"},
		{"unknown region", func(m map[string]any) { m["regions"] = []string{"mars-1"} }, "regions"},
		{"bad arch", func(m map[string]any) { m["arch"] = "sparc" }, "arch"},
		{"unknown currency", func(m map[string]any) { m["currency"] = "XYZ" }, "currency"},
		{"headroom over 90", func(m map[string]any) { m["headroom_percent"] = 95 }, "headroom_percent"},
		{"bad price", func(m map[string]any) { m["max_monthly_price"] = "cheap" }, "max_monthly_price"},
		{"negative price", func(m map[string]any) { m["max_monthly_price"] = -5 }, "max_monthly_price"},
		{"zero limit", func(m map[string]any) { m["limit"] = 0 }, "limit"},
		{"cpu as text", func(m map[string]any) { m["cpu"] = "two" }, "cpu"},
		{"unknown field", func(m map[string]any) { m["gpu"] = 1 }, "gpu"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := recommend(base(tt.mut), 400)
			if !strings.HasPrefix(r.errMsg(), tt.field+": ") {
				t.Errorf("error %q does not name %s", r.errMsg(), tt.field)
			}
		})
	}
}

func TestPlannerRecommendForTemplate(t *testing.T) {
	t.Parallel()
	b, _, tok := plannerAccount(t)
	post := func(body any, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/planner/recommend-for-template", token: tok, body: body}, status)
	}
	r := post(map[string]any{"template": "valheim", "players": 10, "count": 3, "providers": []string{"hetzner"}, "currency": "EUR"}, 200)
	req := r.Body["requirement"].(map[string]any)
	per := req["per_instance"].(map[string]any)
	// 3.5 GiB + 256 MiB × 10 players = 6 GiB; 2 cores; 2 GiB disk.
	if req["template"] != "valheim" || req["players"] != float64(10) || req["count"] != float64(3) ||
		per["memory_mib"] != float64(6144) || per["milli_cpu"] != float64(2000) || per["disk_mib"] != float64(2048) {
		t.Errorf("requirement %v", req)
	}
	if r.Body["template"].(map[string]any)["name"] != "valheim" {
		t.Errorf("template %v", r.Body["template"])
	}
	opts := r.Body["options"].([]any)
	if len(opts) == 0 {
		t.Fatalf("no options: %s", r.Raw)
	}
	for _, o := range opts {
		if o := o.(map[string]any); o["provider"] != "hetzner" || o["arch"] != "x86" { // Valheim's server is x86 only
			t.Errorf("option %v", o)
		}
	}
	// Defaults: the template's player count, one instance.
	d := post(map[string]any{"template": "minecraft-java-paper"}, 200).Body["requirement"].(map[string]any)
	if d["players"] != float64(20) || d["count"] != float64(1) {
		t.Errorf("defaults %v", d)
	}

	bad := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown template", map[string]any{"template": "doom"}, "template"},
		{"missing template", map[string]any{"players": 4}, "template"},
		{"too many players", map[string]any{"template": "valheim", "players": 11}, "players"},
		{"negative players", map[string]any{"template": "valheim", "players": -1}, "players"},
		{"zero count", map[string]any{"template": "valheim", "count": 0}, "count"},
		{"count over 10000", map[string]any{"template": "valheim", "count": 20_000}, "count"},
		{"unknown region", map[string]any{"template": "valheim", "regions": []string{"atlantis"}}, "regions"},
		{"unknown field", map[string]any{"template": "valheim", "mods": true}, "mods"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.body, 400)
			if !strings.HasPrefix(r.errMsg(), tt.field+": ") {
				t.Errorf("error %q does not name %s", r.errMsg(), tt.field)
			}
		})
	}
}

func TestPlannerNeedsPermission(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	noPlanner := b.apiToken(a, "nodes:read")
	withPlanner := b.apiToken(a, "planner:read")
	fit := map[string]any{"cpu": 1, "memory_gb": 1, "disk_gb": 1}
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/planner/templates", nil},
		{"GET", "/v1/planner/pricing", nil},
		{"POST", "/v1/planner/recommend", map[string]any{"cpu": 1, "memory_gb": 1, "disk_gb": 1}},
		{"POST", "/v1/planner/recommend-for-template", map[string]any{"template": "valheim"}},
		{"POST", "/v1/planner/suggest-fit", fit},
	}
	for _, e := range endpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			r := b.expect(req{method: e.method, path: e.path, token: noPlanner, body: e.body}, 403)
			if !strings.Contains(r.errMsg(), "planner:read") {
				t.Errorf("403 message %q", r.errMsg())
			}
			b.expect(req{method: e.method, path: e.path, body: e.body}, 401)
			b.expect(req{method: e.method, path: e.path, token: withPlanner, body: e.body}, 200)
		})
	}
}

// fitNode is a node inserted with SQL, with instances placed on it.
type fitNode struct {
	name, region, status   string
	vcpu, memoryMB, diskGB int
	labels                 string
	instances              int // each 1 core, 2 GiB, 10 GB
}

func (b *bundle) insertNodes(orgID string, nodes []fitNode) map[string]string {
	b.t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for _, n := range nodes {
		labels := n.labels
		if labels == "" {
			labels = "{}"
		}
		var id string
		err := b.pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status, labels)
			VALUES ($1, $2, 'hetzner', $3, 'cx43', $4, $5, $6, $7, $8) RETURNING id`,
			orgID, n.name, n.region, n.vcpu, n.memoryMB, n.diskGB, n.status, labels).Scan(&id)
		if err != nil {
			b.t.Fatal(err)
		}
		if n.instances > 0 {
			if _, err := b.pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
				SELECT $1, $2, $4 || '-gs-' || g, 'valheim', 1000, 2048, 10 FROM generate_series(1, $3::int) g`, orgID, id, n.instances, n.name); err != nil {
				b.t.Fatal(err)
			}
		}
		ids[n.name] = id
	}
	return ids
}

func TestPlannerSuggestFit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	tok := b.apiToken(a, "planner:read")
	otherTok := b.apiToken(other, "planner:read")

	// Capacity = raw − overhead (100m CPU, 512 MiB, 4 GiB disk).
	ids := b.insertNodes(a.orgID, []fitNode{
		{name: "fsn-busy", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160, instances: 3, labels: `{"game":"valheim"}`},
		{name: "fsn-empty", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-full", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 8192, diskGB: 160, instances: 3}, // 6 GiB of 7.5 used
		{name: "fsn-cordoned", region: "fsn1", status: "cordoned", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-maint", region: "fsn1", status: "maintenance", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "nbg-empty", region: "nbg1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
	})
	b.insertNodes(other.orgID, []fitNode{
		{name: "rival-huge", region: "fsn1", status: "ready", vcpu: 64, memoryMB: 262144, diskGB: 2000},
	})

	fit := func(token string, body map[string]any, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/planner/suggest-fit", token: token, body: body}, status)
	}
	names := func(v any) []string {
		var out []string
		for _, n := range v.([]any) {
			out = append(out, n.(map[string]any)["name"].(string))
		}
		return out
	}
	rejected := func(r response) map[string][]string {
		out := map[string][]string{}
		for _, n := range r.Body["rejected"].([]any) {
			n := n.(map[string]any)
			for _, why := range n["reasons"].([]any) {
				out[n["name"].(string)] = append(out[n["name"].(string)], why.(string))
			}
		}
		return out
	}
	need := map[string]any{"cpu": 1, "memory_gb": 2, "disk_gb": 10, "region": "fsn1"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range need {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	tests := []struct {
		name     string
		body     map[string]any
		fits     []string
		rejected map[string][]string
	}{
		{"binpack fills the busiest node", with("strategy", "binpack"), []string{"fsn-busy", "fsn-empty"}, map[string][]string{
			"fsn-full": {"insufficient_memory"}, "fsn-cordoned": {"cordoned"}, "fsn-maint": {"not_ready"}, "nbg-empty": {"wrong_region"},
		}},
		{"binpack is the default", with(), []string{"fsn-busy", "fsn-empty"}, nil},
		{"spread prefers the emptiest", with("strategy", "spread"), []string{"fsn-empty", "fsn-busy"}, nil},
		{"any region", with("region", "", "strategy", "spread"), []string{"fsn-empty", "nbg-empty", "fsn-busy"}, map[string][]string{
			"fsn-full": {"insufficient_memory"}, "fsn-cordoned": {"cordoned"}, "fsn-maint": {"not_ready"},
		}},
		{"labels", with("labels", map[string]string{"game": "valheim"}), []string{"fsn-busy"}, map[string][]string{
			"fsn-empty": {"label_mismatch"}, "fsn-full": {"label_mismatch", "insufficient_memory"}, "fsn-cordoned": {"cordoned", "label_mismatch"},
			"fsn-maint": {"not_ready", "label_mismatch"}, "nbg-empty": {"wrong_region", "label_mismatch"},
		}},
		{"small enough for the full node", with("memory_gb", 1), []string{"fsn-full", "fsn-busy", "fsn-empty"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fit(tok, tt.body, 200)
			if got := names(r.Body["fits"]); !slices.Equal(got, tt.fits) {
				t.Errorf("fits %v, want %v", got, tt.fits)
			}
			if r.Body["nodes"] != float64(6) || strings.Contains(string(r.Raw), "rival") {
				t.Errorf("another organization's node shows: %s", r.Raw)
			}
			if tt.rejected != nil {
				if got := rejected(r); fmt.Sprint(got) != fmt.Sprint(tt.rejected) {
					t.Errorf("rejected %v, want %v", got, tt.rejected)
				}
			}
		})
	}

	t.Run("free capacity and scores", func(t *testing.T) {
		r := fit(tok, with("strategy", "binpack"), 200)
		busy := r.Body["fits"].([]any)[0].(map[string]any)
		free := busy["free"].(map[string]any)
		after := busy["free_after"].(map[string]any)
		// 8 cores − 0.1 − 3 placed; 16 GiB − 512 MiB − 6 GiB; 160 GiB − 4 GiB − 30 GiB.
		if free["milli_cpu"] != float64(4900) || free["memory_mib"] != float64(9728) || free["disk_mib"] != float64(129024) ||
			after["memory_mib"] != float64(9728-2048) || busy["id"] != ids["fsn-busy"] {
			t.Errorf("fsn-busy %v", busy)
		}
		// Scores over the capacity (7900m, 15872 MiB, 159744 MiB) with the
		// new server placed. MostAllocated: fsn-busy uses (4000, 8192,
		// 40960) → 4000×100/7900 = 50, 8192×100/15872 = 51, 40960×100/159744
		// = 25 → 126/3 = 42; fsn-empty uses (1000, 2048, 10240) → 12, 12, 6
		// → 10. Balanced: fsn-busy's fractions (.5063, .5161, .2564) have sd
		// .1202 → 87.98 → 87; fsn-empty's (.1266, .1290, .0641) sd .0300 →
		// 96.99 → 96.
		empty := r.Body["fits"].([]any)[1].(map[string]any)
		if busy["score"] != float64(42) || busy["balanced"] != float64(87) || empty["score"] != float64(10) || empty["balanced"] != float64(96) {
			t.Errorf("binpack: fsn-busy scores %v (balanced %v), fsn-empty %v (%v); want 42 (87), 10 (96)",
				busy["score"], busy["balanced"], empty["score"], empty["balanced"])
		}
		if by := r.Body["rejected_by_reason"].(map[string]any); by["cordoned"] != float64(1) || by["insufficient_memory"] != float64(1) || by["wrong_region"] != float64(1) {
			t.Errorf("rejected_by_reason %v", by)
		}
	})

	t.Run("limit", func(t *testing.T) {
		r := fit(tok, with("limit", 1), 200)
		if len(r.Body["fits"].([]any)) != 1 || r.Body["fits_total"] != float64(2) || len(r.Body["rejected"].([]any)) != 1 || r.Body["rejected_total"] != float64(4) {
			t.Errorf("%s", r.Raw)
		}
	})

	t.Run("the other organization sees only its node", func(t *testing.T) {
		r := fit(otherTok, with(), 200)
		if got := names(r.Body["fits"]); !slices.Equal(got, []string{"rival-huge"}) || r.Body["nodes"] != float64(1) || r.Body["rejected_total"] != float64(0) {
			t.Errorf("%s", r.Raw)
		}
		// Asking with the other organization's id gets 404, not its nodes.
		b.expect(req{method: "POST", path: "/v1/planner/suggest-fit", token: other.access, body: with(),
			header: map[string]string{"X-Organization-ID": a.orgID}}, 404)
	})

	t.Run("reservations follow instances", func(t *testing.T) {
		// Cordon through the API's effect (status), move an instance, delete some.
		ctx := context.Background()
		if _, err := b.pool.Exec(ctx, "UPDATE nodes SET status = 'cordoned' WHERE id = $1", ids["fsn-busy"]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.pool.Exec(ctx, "DELETE FROM instances WHERE node_id = $1 AND name = 'fsn-full-gs-1'", ids["fsn-full"]); err != nil {
			t.Fatal(err)
		}
		r := fit(tok, with(), 200)
		if got := names(r.Body["fits"]); !slices.Equal(got, []string{"fsn-full", "fsn-empty"}) {
			t.Errorf("fits %v after freeing fsn-full and cordoning fsn-busy", got)
		}
		if got := rejected(r)["fsn-busy"]; !slices.Equal(got, []string{"cordoned"}) {
			t.Errorf("fsn-busy rejected for %v", got)
		}
		if _, err := b.pool.Exec(ctx, "UPDATE instances SET node_id = $1 WHERE node_id = $2", ids["fsn-full"], ids["fsn-busy"]); err != nil {
			t.Fatal(err)
		}
		var cnt, mem int
		if err := b.pool.QueryRow(ctx, "SELECT instance_count, reserved_memory_mb FROM nodes WHERE id = $1", ids["fsn-full"]).Scan(&cnt, &mem); err != nil {
			t.Fatal(err)
		}
		if cnt != 5 || mem != 5*2048 {
			t.Errorf("fsn-full holds %d instances, %d MB reserved; want 5, %d", cnt, mem, 5*2048)
		}
	})

	bad := []struct {
		name  string
		body  any
		field string
	}{
		{"zero cpu", with("cpu", 0), "cpu"},
		{"missing memory", map[string]any{"cpu": 1, "disk_gb": 1}, "memory_gb"},
		{"negative disk", with("disk_gb", -10), "disk_gb"},
		{"bad strategy", with("strategy", "random"), "strategy"},
		{"zero limit", with("limit", 0), "limit"},
		{"limit over 10000", with("limit", 10_001), "limit"},
		{"labels not an object", with("labels", []string{"game"}), "labels"},
		{"unknown field", with("count", 2), "count"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := fit(tok, tt.body.(map[string]any), 400)
			if !strings.HasPrefix(r.errMsg(), tt.field+": ") {
				t.Errorf("error %q does not name %s", r.errMsg(), tt.field)
			}
		})
	}
	b.expect(req{method: "POST", path: "/v1/planner/suggest-fit", token: tok, body: `{"cpu": 1} {}`}, 400)
}
