package search_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// field returns each row's value of key, as text.
func field(rows []map[string]any, key string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprint(r[key])
	}
	return out
}

type searchCase struct {
	name, body string
	key        string // the row field compared (default name)
	want       []string
	total      int64
}

func (b *testBundle) run(t *testing.T, p *domain.Principal, resource string, cases []searchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = "name"
			}
			rows, total := b.rows(p, resource, tc.body)
			if got := field(rows, key); !slices.Equal(got, tc.want) || total != tc.total {
				t.Errorf("%s %s: got %v (total %d), want %v (total %d)", resource, tc.body, got, total, tc.want, tc.total)
			}
		})
	}
}

func TestSearchInstances(t *testing.T) {
	t.Parallel()
	b := setup(t)
	n := b.node(b.a, node{name: "host"})
	for i, tpl := range []string{"valheim", "valheim", "minecraft"} {
		b.exec(`INSERT INTO instances (organization_id, node_id, name, template, players, cpu_millis, memory_mb, disk_gb, created_at)
			VALUES ($1, $2, $3, $4, $5::int, 1000, 1024, 10, now() + make_interval(secs => $5::int))`, b.a.OrgID, n, fmt.Sprintf("gs-%d", i), tpl, i*10)
	}
	nb := b.node(b.b, node{name: "host-b"})
	b.exec(`INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb) VALUES ($1, $2, 'gs-b', 'valheim', 1000, 1024, 10)`, b.b.OrgID, nb)
	b.run(t, b.a, "instances", []searchCase{
		{name: "template", body: `{"filters":{"template":["valheim"]}}`, want: []string{"gs-0", "gs-1"}, total: 2},
		{name: "node", body: `{"filters":{"node_id":["` + n + `"]},"sortBy":"players","sortDirection":"desc"}`, want: []string{"gs-2", "gs-1", "gs-0"}, total: 3},
		{name: "players range", body: `{"greaterThan":{"players":0},"lessThan":{"players":20}}`, want: []string{"gs-1"}, total: 1},
		{name: "search", body: `{"search":{"name":["GS"]}}`, want: []string{"gs-0", "gs-1", "gs-2"}, total: 3},
		{name: "other organization's node", body: `{"filters":{"node_id":["` + nb + `"]}}`, want: []string{}, total: 0},
	})
	rows, _ := b.rows(b.a, "instances", `{"limit":1,"extend":["node","node.dns_records"]}`)
	if nn, _ := rows[0]["node"].(map[string]any); nn == nil || nn["name"] != "host" || nn["dns_records"] == nil {
		t.Errorf("instance with node: %v", rows)
	}
}

func TestSearchCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct {
		name, provider string
		def            bool
	}{{"hetzner prod", "hetzner", true}, {"hetzner staging", "hetzner", false}, {"aws", "aws", true}} {
		b.exec(`INSERT INTO credentials (id, organization_id, name, provider, secret, hint, is_default) VALUES (gen_random_uuid(), $1, $2, $3, '\x00', '...abcd', $4)`,
			b.a.OrgID, c.name, c.provider, c.def)
	}
	b.exec(`INSERT INTO credentials (id, organization_id, name, provider, secret, hint) VALUES (gen_random_uuid(), $1, 'hetzner b', 'hetzner', '\x00', 'x')`, b.b.OrgID)
	b.run(t, b.a, "credentials", []searchCase{
		{name: "provider", body: `{"filters":{"provider":["hetzner"]}}`, want: []string{"hetzner prod", "hetzner staging"}, total: 2},
		{name: "defaults", body: `{"filters":{"is_default":[true]},"sortBy":"name"}`, want: []string{"aws", "hetzner prod"}, total: 2},
		{name: "defaults from a string", body: `{"filters":{"is_default":["true"]},"sortBy":"name"}`, want: []string{"aws", "hetzner prod"}, total: 2},
		{name: "search", body: `{"search":{"name":["STAG"]}}`, want: []string{"hetzner staging"}, total: 1},
	})
	rows, _ := b.rows(b.a, "credentials", `{"limit":1}`)
	if _, ok := rows[0]["secret"]; ok {
		t.Errorf("a credential row shows its secret: %v", rows[0])
	}
}

func TestSearchCertificates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ca := uuid.New()
	b.exec(`INSERT INTO ssh_ca_keys (id, organization_id, algorithm, public_key, fingerprint, sealed_private_key) VALUES ($1, $2, 'ed25519', 'ssh-ed25519 AAAA', 'SHA256:ca', '\x00')`, ca, b.a.OrgID)
	n := b.node(b.a, node{name: "game-1"})
	// A member of A (not the owner), and a user of B only.
	member := b.exec(`INSERT INTO users (email, password_hash) VALUES ('m@example.com', 'x') RETURNING id::text`)
	b.exec(`INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')`, b.a.OrgID, member)
	cert := func(keyID string, user any, node any, serial int, revoked bool) {
		b.exec(`INSERT INTO ssh_certificates (organization_id, ca_key_id, user_id, node_id, serial, key_id, principals, key_type, key_fingerprint,
			valid_after, valid_before, revoked_at, certificate)
			VALUES ($1, $2, $3, $4, $5, $6, '{ops}', 'ssh-ed25519', 'SHA256:k', now(), now() + interval '1 hour', CASE WHEN $7 THEN now() END, 'cert')`,
			b.a.OrgID, ca, user, node, serial, keyID, revoked)
	}
	cert("owner-1", b.a.UserID, n, 1, false)
	cert("owner-2", b.a.UserID, nil, 2, true)
	cert("member-1", member, n, 3, false)
	cert("stranger-1", b.b.UserID, nil, 4, false) // names a user of another organization
	b.run(t, b.a, "ssh/certificates", []searchCase{
		{name: "admin sees all, newest first by serial", body: `{"sortBy":"serial","sortDirection":"desc"}`, key: "key_id", want: []string{"stranger-1", "member-1", "owner-2", "owner-1"}, total: 4},
		{name: "revoked", body: `{"filters":{"revoked":[true]}}`, key: "key_id", want: []string{"owner-2"}, total: 1},
		{name: "serial range", body: `{"greaterThan":{"serial":1},"lessThan":{"serial":4},"sortBy":"serial"}`, key: "key_id", want: []string{"owner-2", "member-1"}, total: 2},
		{name: "search key id", body: `{"search":{"key_id":["MEMBER"]}}`, key: "key_id", want: []string{"member-1"}, total: 1},
	})
	t.Run("ssh:sign sees only its own", func(t *testing.T) {
		p := &domain.Principal{UserID: uuid.MustParse(member), OrgID: b.a.OrgID, Role: domain.RoleMember, HasOrg: true,
			Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleMember))}
		if p.Can(domain.PermSSHAdmin) {
			t.Skip("members hold ssh:admin")
		}
		rows, total := b.rows(p, "ssh/certificates", `{"filters":{"node_id":["`+n+`"]}}`)
		if got := field(rows, "key_id"); !slices.Equal(got, []string{"member-1"}) || total != 1 {
			t.Errorf("member sees %v (%d)", got, total)
		}
	})
	t.Run("extend user and node, never another organization's user", func(t *testing.T) {
		rows, _ := b.rows(b.a, "ssh/certificates", `{"sortBy":"serial","extend":["user","node","node.instances"]}`)
		if len(rows) != 4 {
			t.Fatalf("%d rows", len(rows))
		}
		if u, _ := rows[0]["user"].(map[string]any); u == nil || u["email"] != "a@example.com" || u["role"] != "owner" {
			t.Errorf("owner-1 user %v", rows[0]["user"])
		}
		if nn, _ := rows[0]["node"].(map[string]any); nn == nil || nn["name"] != "game-1" || nn["instances"] == nil {
			t.Errorf("owner-1 node %v", rows[0]["node"])
		}
		if rows[1]["node"] != nil {
			t.Errorf("owner-2 has no node: %v", rows[1]["node"])
		}
		if rows[3]["user"] != nil {
			t.Errorf("stranger-1's user is of another organization: %v", rows[3]["user"])
		}
	})
}

func TestSearchDNSRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	n := b.node(b.a, node{name: "game-1"})
	for _, r := range []struct {
		typ, name string
		ttl       int
		node      any
	}{{"A", "game-1.example.com", 60, n}, {"AAAA", "game-1.example.com", 300, n}, {"TXT", "_acme.example.com", 3600, nil}} {
		b.exec(`INSERT INTO dns_records (organization_id, zone_id, zone_name, type, name, content, ttl, node_id, status)
			VALUES ($1, 'z1', 'example.com', $2, $3, 'x', $4, $5, 'synced')`, b.a.OrgID, r.typ, r.name, r.ttl, r.node)
	}
	b.run(t, b.a, "dns/records", []searchCase{
		{name: "type", body: `{"filters":{"type":["A","AAAA"]}}`, key: "type", want: []string{"A", "AAAA"}, total: 2},
		{name: "ttl", body: `{"greaterThan":{"ttl":60}}`, key: "type", want: []string{"AAAA", "TXT"}, total: 2},
		{name: "search _ literally", body: `{"search":{"name":["_acme"]}}`, key: "type", want: []string{"TXT"}, total: 1},
		{name: "node", body: `{"filters":{"node_id":["` + n + `"]},"sortBy":"ttl","sortDirection":"desc"}`, key: "ttl", want: []string{"300", "60"}, total: 2},
	})
	rows, _ := b.rows(b.a, "dns/records", `{"filters":{"type":["A"]},"extend":["node","node.instances"]}`)
	if nn, _ := rows[0]["node"].(map[string]any); nn == nil || nn["name"] != "game-1" || nn["fqdn"] != "game-1.example.com" {
		t.Errorf("record with node: %v", rows)
	}
}

func TestSearchAuditLogs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, a := range []struct {
		action string
		status int
	}{{"POST /v1/provision", 201}, {"DELETE /v1/nodes/:id", 204}, {"POST /v1/provision/:id/apply", 202}} {
		b.exec(`INSERT INTO audit_logs (organization_id, user_id, action, target, status, created_at) VALUES ($1, $2, $3, 't', $4, now() + make_interval(secs => $5))`,
			b.a.OrgID, b.a.UserID, a.action, a.status, i)
	}
	b.exec(`INSERT INTO audit_logs (organization_id, action, status) VALUES ($1, 'POST /v1/provision', 201)`, b.b.OrgID)
	b.run(t, b.a, "admin/audit-logs", []searchCase{
		{name: "newest first", body: `{}`, key: "status", want: []string{"202", "204", "201"}, total: 3},
		{name: "search action", body: `{"search":{"action":["/V1/PROVISION"]},"sortDirection":"asc"}`, key: "status", want: []string{"201", "202"}, total: 2},
		{name: "status", body: `{"filters":{"status":[204]}}`, key: "action", want: []string{"DELETE /v1/nodes/:id"}, total: 1},
		{name: "by id", body: `{"sortBy":"id","lessThan":{"status":204}}`, key: "status", want: []string{"201", "202"}, total: 2},
		{name: "user", body: `{"filters":{"user_id":["` + b.a.UserID.String() + `"]}}`, key: "status", want: []string{"202", "204", "201"}, total: 3},
	})
	if _, err := b.search(b.a, "admin/audit-logs", `{"extend":["user"]}`); err == nil {
		t.Error("audit logs have no extends")
	}
	_ = context.Background
}

func TestSearchProvision(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, r := range []struct{ name, provider, status, labels string }{
		{"web-1", "local", "applied", `{"team":"web"}`}, {"web-2", "hetzner", "failed", `{"team":"web"}`},
		{"db-1", "aws", "pending", `{"team":"data"}`}, {"game_1", "hetzner", "applied", `{}`},
	} {
		b.exec(`INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status, labels, error, created_at)
			VALUES ($1, $2, 'r', 't', $3, $4, $5, CASE WHEN $4 = 'failed' THEN 'quota exceeded' ELSE '' END, '2026-01-01'::timestamptz + make_interval(hours => $6::int))`,
			b.a.OrgID, r.provider, r.name, r.status, r.labels, i)
	}
	b.exec(`INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status) VALUES ($1, 'local', 'r', 't', 'web-b', 'applied')`, b.b.OrgID)
	b.run(t, b.a, "provision", []searchCase{
		{name: "newest first by default", body: `{}`, want: []string{"game_1", "db-1", "web-2", "web-1"}, total: 4},
		{name: "status", body: `{"filters":{"status":["applied"]}}`, want: []string{"game_1", "web-1"}, total: 2},
		{name: "status and provider", body: `{"filters":{"status":["applied","failed"],"provider":["hetzner"]}}`, want: []string{"game_1", "web-2"}, total: 2},
		{name: "labels", body: `{"filters":{"labels":["team=web"]},"sortDirection":"asc"}`, want: []string{"web-1", "web-2"}, total: 2},
		{name: "search name and error", body: `{"search":{"name":["WEB"],"error":["quota"]}}`, want: []string{"web-2"}, total: 1},
		{name: "search _ literally", body: `{"search":{"name":["e_1"]}}`, want: []string{"game_1"}, total: 1},
		{name: "created_at range", body: `{"greaterThan":{"created_at":"2026-01-01T00:30:00Z"},"lessThan":{"created_at":"2026-01-01T02:30:00Z"},"sortDirection":"asc"}`, want: []string{"web-2", "db-1"}, total: 2},
		{name: "sort by name", body: `{"sortBy":"name","sortDirection":"asc","limit":2}`, want: []string{"db-1", "game_1"}, total: 4},
		{name: "page 2", body: `{"sortBy":"name","sortDirection":"asc","limit":2,"page":2}`, want: []string{"web-1", "web-2"}, total: 4},
	})
	b.run(t, b.b, "provision", []searchCase{
		{name: "organization B sees its own", body: `{"search":{"name":["web"]}}`, want: []string{"web-b"}, total: 1},
	})
}
