package search_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/search"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// counter is a pgx.QueryTracer counting the queries the pool runs.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// testBundle is one test's database, services and two organizations.
type testBundle struct {
	t       *testing.T
	pool    *pgxpool.Pool
	queries *counter
	svc     *search.Service
	prov    *provision.Service
	a, b    *domain.Principal // owners of organizations A and B
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(storetest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	prov := provision.New(st, sealer, providers.NewRegistry(providers.Local{}), nil, time.Now, quiet)
	certs, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(certs.Close)
	ids, err := identity.New(st, key, sealer, ratelimit.New(pool, time.Now), time.Now, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := search.New(pool, search.Sources{
		Provisioning: prov, Instances: placement.New(st, placement.Config{}), Credentials: credentials.New(st, sealer, nil),
		Certificates: certs, DNS: dns.New(st, nil, dns.Options{}), Audit: audit.New(st), Members: ids,
	})
	b := &testBundle{t: t, pool: pool, queries: c, svc: svc, prov: prov}
	b.a, b.b = b.org("a"), b.org("b")
	return b
}

// exec runs SQL and returns the first column of its first row, if any.
func (b *testBundle) exec(sql string, args ...any) string {
	b.t.Helper()
	var out string
	rows, err := b.pool.Query(context.Background(), sql, args...)
	if err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&out); err != nil {
			b.t.Fatalf("%s: %v", sql, err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// org makes an organization with an owner and returns the owner.
func (b *testBundle) org(name string) *domain.Principal {
	b.t.Helper()
	org := b.exec(`INSERT INTO organizations (name) VALUES ($1) RETURNING id::text`, name)
	user := b.exec(`INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id::text`, name+"@example.com")
	b.exec(`INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'owner')`, org, user)
	return &domain.Principal{UserID: uuid.MustParse(user), Email: name + "@example.com", OrgID: uuid.MustParse(org), Role: domain.RoleOwner,
		Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleOwner)), HasOrg: true}
}

type node struct {
	name, region, status, power, labels string
	vcpu                                int
	created                             time.Time
}

// node inserts a node of p's organization and returns its id.
func (b *testBundle) node(p *domain.Principal, n node) string {
	b.t.Helper()
	if n.status == "" {
		n.status = "ready"
	}
	if n.power == "" {
		n.power = "running"
	}
	if n.labels == "" {
		n.labels = "{}"
	}
	if n.vcpu == 0 {
		n.vcpu = 2
	}
	if n.created.IsZero() {
		n.created = time.Now()
	}
	return b.exec(`INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status, power_state, labels, created_at, ipv4)
		VALUES ($1, $2, 'hetzner', $3, 'cx22', $4, 4096, 40, $5, $6, $7, $8, '203.0.113.' || (random() * 200)::int) RETURNING id::text`,
		p.OrgID, n.name, n.region, n.vcpu, n.status, n.power, n.labels, n.created)
}

func (b *testBundle) search(p *domain.Principal, resource, body string) (search.Result, error) {
	b.t.Helper()
	var sb search.Body
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sb); err != nil {
		b.t.Fatalf("body %s: %v", body, err)
	}
	return b.svc.Search(context.Background(), p, resource, sb)
}

// rows runs a search that must succeed and returns its rows as JSON objects.
func (b *testBundle) rows(p *domain.Principal, resource, body string) ([]map[string]any, int64) {
	b.t.Helper()
	res, err := b.search(p, resource, body)
	if err != nil {
		b.t.Fatalf("search %s %s: %v", resource, body, err)
	}
	raw, err := json.Marshal(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		b.t.Fatal(err)
	}
	return out, res.Total
}

func names(rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i], _ = r["name"].(string)
	}
	return out
}

func TestSearchNodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.node(b.a, node{name: "fsn-game-1", region: "fsn1", labels: `{"game":"valheim"}`, vcpu: 2, created: base})
	b.node(b.a, node{name: "fsn-game-2", region: "fsn1", status: "cordoned", vcpu: 4, created: base.Add(time.Hour)})
	b.node(b.a, node{name: "nbg-web_1", region: "nbg1", power: "stopped", vcpu: 8, created: base.Add(2 * time.Hour)})
	b.node(b.a, node{name: "hel-100%", region: "hel1", labels: `{"game":"minecraft"}`, vcpu: 16, created: base.Add(3 * time.Hour)})
	b.node(b.b, node{name: "fsn-game-9", region: "fsn1", created: base}) // another organization's

	cases := []struct {
		name, body string
		want       []string
		total      int64
	}{
		{"all, oldest first", `{}`, []string{"fsn-game-1", "fsn-game-2", "nbg-web_1", "hel-100%"}, 4},
		{"filter one value", `{"filters":{"region":["fsn1"]}}`, []string{"fsn-game-1", "fsn-game-2"}, 2},
		{"filter OR within a field", `{"filters":{"region":["nbg1","hel1"]}}`, []string{"nbg-web_1", "hel-100%"}, 2},
		{"filters AND across fields", `{"filters":{"region":["fsn1"],"status":["cordoned"]}}`, []string{"fsn-game-2"}, 1},
		{"status as GET shows it (stopped)", `{"filters":{"status":["stopped"]}}`, []string{"nbg-web_1"}, 1},
		{"labels", `{"filters":{"labels":["game=valheim","game=minecraft"]}}`, []string{"fsn-game-1", "hel-100%"}, 2},
		{"int filter", `{"filters":{"vcpu":[4,16]}}`, []string{"fsn-game-2", "hel-100%"}, 2},
		{"int filter from strings (a command line's values)", `{"filters":{"vcpu":["4","16"]}}`, []string{"fsn-game-2", "hel-100%"}, 2},
		{"greaterThan number from a string", `{"greaterThan":{"vcpu":"4"}}`, []string{"nbg-web_1", "hel-100%"}, 2},
		{"search case-insensitive", `{"search":{"name":["GAME"]}}`, []string{"fsn-game-1", "fsn-game-2"}, 2},
		{"search OR", `{"search":{"name":["web","hel"]}}`, []string{"nbg-web_1", "hel-100%"}, 2},
		{"search _ is literal", `{"search":{"name":["b_1"]}}`, []string{"nbg-web_1"}, 1},
		{"search % is literal", `{"search":{"name":["0%"]}}`, []string{"hel-100%"}, 1},
		{"search _ matches no other character", `{"search":{"name":["game_"]}}`, []string{}, 0},
		{"greaterThan number", `{"greaterThan":{"vcpu":4}}`, []string{"nbg-web_1", "hel-100%"}, 2},
		{"range of numbers", `{"greaterThan":{"vcpu":2},"lessThan":{"vcpu":16}}`, []string{"fsn-game-2", "nbg-web_1"}, 2},
		{"timestamps", `{"greaterThan":{"created_at":"2026-01-01T00:30:00Z"},"lessThan":{"created_at":"2026-01-01T02:30:00+00:00"}}`, []string{"fsn-game-2", "nbg-web_1"}, 2},
		{"sort desc", `{"sortBy":"vcpu","sortDirection":"desc"}`, []string{"hel-100%", "nbg-web_1", "fsn-game-2", "fsn-game-1"}, 4},
		{"sort by name", `{"sortBy":"name"}`, []string{"fsn-game-1", "fsn-game-2", "hel-100%", "nbg-web_1"}, 4},
		{"page 2", `{"sortBy":"name","page":2,"limit":3}`, []string{"nbg-web_1"}, 4},
		{"past the end", `{"page":3,"limit":3}`, []string{}, 4},
		{"search, page 2", `{"search":{"name":["game"]},"page":2,"limit":1}`, []string{"fsn-game-2"}, 2},
		{"search past the end", `{"search":{"name":["game"]},"page":5,"limit":1}`, []string{}, 2},
		{"search matching nothing", `{"search":{"name":["nothing"]}}`, []string{}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows, total := b.rows(b.a, "nodes", tc.body)
			if got := names(rows); !slices.Equal(got, tc.want) || total != tc.total {
				t.Errorf("%s: got %v (total %d), want %v (total %d)", tc.body, got, total, tc.want, tc.total)
			}
		})
	}
	t.Run("other organization sees only its own", func(t *testing.T) {
		rows, total := b.rows(b.b, "nodes", `{"search":{"name":["game"]}}`)
		if got := names(rows); !slices.Equal(got, []string{"fsn-game-9"}) || total != 1 {
			t.Errorf("got %v (%d)", got, total)
		}
	})
	t.Run("a row is what GET answers", func(t *testing.T) {
		rows, _ := b.rows(b.a, "nodes", `{"filters":{"region":["nbg1"]}}`)
		id := uuid.MustParse(rows[0]["id"].(string))
		n, err := b.prov.GetNode(context.Background(), b.a, id)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(n)
		got, _ := json.Marshal(rows[0])
		var w map[string]any
		_ = json.Unmarshal(want, &w)
		wantNorm, _ := json.Marshal(w)
		if !bytes.Equal(got, wantNorm) {
			t.Errorf("search row %s\nGET        %s", got, wantNorm)
		}
	})
}

func TestSearchFqdn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	n1 := b.node(b.a, node{name: "game-1"})
	b.node(b.a, node{name: "game-2"})
	b.exec(`INSERT INTO dns_records (organization_id, zone_id, zone_name, type, name, content, node_id, status)
		VALUES ($1, 'z', 'example.com', 'A', 'eu-west.example.com', '203.0.113.1', $2, 'synced')`, b.a.OrgID, n1)
	rows, total := b.rows(b.a, "nodes", `{"search":{"fqdn":["EU-WEST"]}}`)
	if got := names(rows); !slices.Equal(got, []string{"game-1"}) || total != 1 || rows[0]["fqdn"] != "eu-west.example.com" {
		t.Errorf("got %v (%d) %v", got, total, rows)
	}
}

func TestSearchValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct{ resource, body, want string }{
		{"nodes", `{"filters":{"colour":["red"]}}`, "filters.colour: unknown field; allowed: id, provision_id, name, fqdn,"},
		{"nodes", `{"search":{"vcpu":["2"]}}`, "search.vcpu: unknown field; allowed: name, fqdn, provider"},
		{"nodes", `{"greaterThan":{"name":"a"}}`, "greaterThan.name: unknown field; allowed: vcpu, memory_mb, disk_gb, instance_count, created_at, updated_at"},
		{"nodes", `{"filters":{"vcpu":["two"]}}`, "filters.vcpu[0]: must be a whole number"},
		{"nodes", `{"filters":{"vcpu":[1.5]}}`, "filters.vcpu[0]: must be a whole number"},
		{"nodes", `{"filters":{"id":["nope"]}}`, "filters.id[0]: must be a canonical lowercase UUID"},
		{"nodes", `{"filters":{"status":["gone"]}}`, "filters.status[0]: must be one of ready, cordoned, maintenance, unreachable, stopped"},
		{"nodes", `{"filters":{"labels":["novalue"]}}`, "filters.labels[0]: must be key=value"},
		{"nodes", `{"filters":{"region":[]}}`, "filters.region: must list 1 to 100 values"},
		{"nodes", `{"search":{"name":[""]}}`, "search.name[0]: must not be empty"},
		{"nodes", `{"lessThan":{"created_at":"yesterday"}}`, "lessThan.created_at: must be an RFC 3339 timestamp"},
		{"nodes", `{"sortBy":"ipv4x"}`, "sortBy: unknown sort field \"ipv4x\"; allowed: name, provider"},
		{"nodes", `{"sortDirection":"up"}`, "sortDirection: must be asc or desc"},
		{"nodes", `{"limit":101}`, "limit: must be a whole number from 1 to 100"},
		{"nodes", `{"page":0}`, "page: must be a whole number from 1 to 1000000"},
		{"nodes", `{"extend":["owner"]}`, "extend[0]: unknown extend \"owner\"; allowed: dns_records, instances, provision, provision.runs"},
		{"credentials", `{"extend":["node"]}`, "extend[0]: unknown extend \"node\"; allowed: none"},
		{"credentials", `{"filters":{"is_default":["yes"]}}`, "filters.is_default[0]: must be true or false"},
		{"nodes", `{"filters":{"vcpu":["4 5"]}}`, "filters.vcpu[0]: must be a whole number"},
		{"nodes", `{"filters":{"vcpu":[""]}}`, "filters.vcpu[0]: must be a whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			_, err := b.search(b.a, tc.resource, tc.body)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want it to start with %q", tc.body, err, tc.want)
			}
		})
	}
}

func TestSearchPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	viewer := *b.a
	viewer.Role, viewer.Perms = domain.RoleViewer, domain.NewPermissionSet(domain.RolePermissions(domain.RoleViewer))
	for _, resource := range []string{"admin/audit-logs"} {
		_, err := b.search(&viewer, resource, `{}`)
		if !strings.Contains(fmt.Sprint(err), "missing permission") {
			t.Errorf("%s as a viewer: %v", resource, err)
		}
	}
	if _, err := b.search(b.a, "nodes/nope", `{}`); !strings.Contains(fmt.Sprint(err), "not found") {
		t.Errorf("unknown resource: %v", err)
	}
}

// TestSearchExtend checks the extends, nested ones included, and that
// they cost one query per level, however many rows.
func TestSearchExtend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	mk := func(p *domain.Principal, i int) (prov, nodeID string) {
		prov = b.exec(`INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status)
			VALUES ($1, 'local', 'local', 'local-small', $2, 'applied') RETURNING id::text`, p.OrgID, fmt.Sprintf("req-%d", i))
		nodeID = b.node(p, node{name: fmt.Sprintf("node-%d", i)})
		b.exec(`UPDATE nodes SET provision_id = $1 WHERE id = $2`, prov, nodeID)
		b.exec(`UPDATE provision_requests SET node_id = $1 WHERE id = $2`, nodeID, prov)
		for k, kind := range []string{"plan", "apply", "refresh"} {
			b.exec(`INSERT INTO provision_runs (organization_id, provision_id, kind, status, queued_at, finished_at, drifted)
				VALUES ($1, $2, $3, 'succeeded', now() - make_interval(mins => 10 - $4::int), now(), CASE WHEN $3 = 'refresh' THEN false END)`, p.OrgID, prov, kind, k)
		}
		for k := range 2 {
			b.exec(`INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
				VALUES ($1, $2, $3, 'valheim', 1000, 1024, 10)`, p.OrgID, nodeID, fmt.Sprintf("gs-%d-%d", i, k))
		}
		b.exec(`INSERT INTO dns_records (organization_id, zone_id, zone_name, type, name, content, node_id, status)
			VALUES ($1, 'z', 'example.com', 'A', $2, '203.0.113.1', $3, 'synced')`, p.OrgID, fmt.Sprintf("node-%d.example.com", i), nodeID)
		return prov, nodeID
	}
	for i := range 3 {
		mk(b.a, i)
	}

	t.Run("provision with node, node.instances and runs", func(t *testing.T) {
		rows, _ := b.rows(b.a, "provision", `{"sortBy":"name","sortDirection":"asc","extend":["node","node.instances","node.dns_records","runs"]}`)
		if len(rows) != 3 {
			t.Fatalf("%d rows", len(rows))
		}
		r := rows[0]
		n, ok := r["node"].(map[string]any)
		if !ok || n["name"] != "node-0" || n["id"] != r["node_id"] {
			t.Fatalf("node %v", r["node"])
		}
		if is, _ := n["instances"].([]any); len(is) != 2 || is[0].(map[string]any)["name"] != "gs-0-0" {
			t.Errorf("node.instances %v", n["instances"])
		}
		if ds, _ := n["dns_records"].([]any); len(ds) != 1 || ds[0].(map[string]any)["name"] != "node-0.example.com" {
			t.Errorf("node.dns_records %v", n["dns_records"])
		}
		runs, _ := r["runs"].([]any)
		if len(runs) != 3 || runs[0].(map[string]any)["kind"] != "refresh" {
			t.Errorf("runs (newest first) %v", r["runs"])
		}
		if d, _ := r["drift"].(map[string]any); d == nil || d["drifted"] != false {
			t.Errorf("drift as GET shows it: %v", r["drift"])
		}
		// The row without extends is GET's answer.
		got, err := b.prov.Get(ctx, b.a, uuid.MustParse(r["id"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(got)
		var wm map[string]any
		_ = json.Unmarshal(want, &wm)
		for _, k := range []string{"node", "runs"} {
			delete(r, k)
		}
		a, _ := json.Marshal(r)
		w, _ := json.Marshal(wm)
		if !bytes.Equal(a, w) {
			t.Errorf("row %s\nGET %s", a, w)
		}
	})

	t.Run("node with provision.runs, instances; instance with node.provision", func(t *testing.T) {
		rows, _ := b.rows(b.a, "nodes", `{"sortBy":"name","limit":1,"extend":["provision","provision.runs","instances"]}`)
		p, _ := rows[0]["provision"].(map[string]any)
		if p == nil || p["name"] != "req-0" || len(p["runs"].([]any)) != 3 {
			t.Fatalf("provision %v", rows[0]["provision"])
		}
		if is := rows[0]["instances"].([]any); len(is) != 2 {
			t.Errorf("instances %v", is)
		}
		rows, _ = b.rows(b.a, "instances", `{"search":{"name":["gs-1-"]},"extend":["node","node.provision"]}`)
		if len(rows) != 2 || rows[1]["node"].(map[string]any)["name"] != "node-1" ||
			rows[1]["node"].(map[string]any)["provision"].(map[string]any)["name"] != "req-1" {
			t.Errorf("instance node.provision %v", rows)
		}
	})

	t.Run("one query per level, however many rows", func(t *testing.T) {
		body := `{"extend":["node","node.instances","node.dns_records","runs"]}`
		count := func() int64 {
			before := b.queries.n.Load()
			if _, err := b.search(b.a, "provision", body); err != nil {
				t.Fatal(err)
			}
			return b.queries.n.Load() - before
		}
		few := count()
		for i := 3; i < 23; i++ {
			mk(b.a, i)
		}
		many := count()
		// count, ids, requests + drift, node + its DNS names, instances,
		// dns records, runs.
		if few != many || few > 9 {
			t.Errorf("3 rows: %d queries; 20 rows: %d queries", few, many)
		}
	})

	t.Run("extends never cross organizations", func(t *testing.T) {
		prov, nodeID := mk(b.b, 99)
		// A row of A pointing at B's node (a corrupt or hostile reference).
		own := b.exec(`INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status, node_id)
			VALUES ($1, 'local', 'local', 'local-small', 'points-at-b', 'applied', $2) RETURNING id::text`, b.a.OrgID, nodeID)
		rows, _ := b.rows(b.a, "provision", `{"filters":{"id":["`+own+`"]},"extend":["node","runs"]}`)
		if len(rows) != 1 || rows[0]["node"] != nil || len(rows[0]["runs"].([]any)) != 0 {
			t.Errorf("A sees B's objects: %v", rows)
		}
		rows, total := b.rows(b.a, "provision", `{"filters":{"id":["`+prov+`"]}}`)
		if len(rows) != 0 || total != 0 {
			t.Errorf("A finds B's request: %v", rows)
		}
		// B's own extends are B's.
		rows, _ = b.rows(b.b, "nodes", `{"filters":{"id":["`+nodeID+`"]},"extend":["instances","provision"]}`)
		if len(rows) != 1 || len(rows[0]["instances"].([]any)) != 2 || rows[0]["provision"].(map[string]any)["id"] != prov {
			t.Errorf("B's node: %v", rows)
		}
	})
}
