package api_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sameJSON compares two JSON objects by value.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	norm := func(v any) any {
		raw, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		t.Errorf("%s: search row\n%s\nGET\n%s", what, gb, wb)
	}
}

func TestSearchEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	ids := b.insertNodes(a.orgID, []fitNode{
		{name: "fsn-game-1", region: "fsn1", status: "ready", vcpu: 4, memoryMB: 8192, diskGB: 80, labels: `{"game":"valheim"}`, instances: 2},
		{name: "fsn-game-2", region: "fsn1", status: "cordoned", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "nbg-web-1", region: "nbg1", status: "ready", vcpu: 2, memoryMB: 4096, diskGB: 40},
	})
	prov := b.expect(req{method: "POST", path: "/v1/provision", token: a.access,
		body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1", "labels": map[string]string{"team": "web"}}}, 201)
	cred := b.expect(req{method: "POST", path: "/v1/credentials", token: a.access,
		body: map[string]any{"name": "hetzner prod", "provider": "hetzner", "secret": map[string]string{"token": strings.Repeat("a", 64)}}}, 201)
	other := b.register("other@example.com")
	b.insertNodes(other.orgID, []fitNode{{name: "fsn-game-9", region: "fsn1", status: "ready", vcpu: 4, memoryMB: 8192, diskGB: 80}})

	search := func(token, path string, body any, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: path, token: token, body: body}, status)
	}

	t.Run("nodes: filters, search, ranges, sort, paging", func(t *testing.T) {
		r := search(a.access, "/v1/nodes/search", map[string]any{
			"filters": map[string]any{"region": []string{"fsn1"}}, "search": map[string]any{"name": []string{"GAME"}},
			"greaterThan": map[string]any{"vcpu": 2}, "sortBy": "vcpu", "sortDirection": "desc", "limit": 1, "page": 2,
		}, 200)
		meta := r.Body["meta"].(map[string]any)
		if l := r.list(); len(l) != 1 || l[0]["name"] != "fsn-game-1" || meta["total"] != float64(2) || meta["page"] != float64(2) || meta["limit"] != float64(1) {
			t.Errorf("%s", r.Raw)
		}
	})

	t.Run("every row is what GET answers", func(t *testing.T) {
		cases := []struct{ path, get string }{
			{"/v1/nodes/search", "/v1/nodes/"},
			{"/v1/provision/search", "/v1/provision/"},
			{"/v1/credentials/search", "/v1/credentials/"},
			{"/v1/instances/search", "/v1/instances/"},
		}
		for _, c := range cases {
			r := search(a.access, c.path, map[string]any{}, 200)
			if len(r.list()) == 0 {
				t.Errorf("%s: no rows", c.path)
			}
			for _, row := range r.list() {
				got := b.expect(req{method: "GET", path: c.get + row["id"].(string), token: a.access}, 200)
				sameJSON(t, c.path, row, got.Body)
			}
		}
		r := search(a.access, "/v1/admin/audit-logs/search", map[string]any{"search": map[string]any{"action": []string{"/v1/provision"}}}, 200)
		if l := r.list(); len(l) != 1 || l[0]["target"] != prov.str("id") {
			t.Errorf("audit (searches are not audited): %s", r.Raw)
		}
		list := b.expect(req{method: "GET", path: "/v1/admin/audit-logs", token: a.access}, 200)
		for _, e := range list.list() {
			if e["id"] == r.list()[0]["id"] {
				sameJSON(t, "audit", r.list()[0], e)
			}
		}
		_ = cred
	})

	t.Run("extend", func(t *testing.T) {
		r := search(a.access, "/v1/nodes/search", map[string]any{"filters": map[string]any{"id": []string{ids["fsn-game-1"]}}, "extend": []string{"instances", "provision"}}, 200)
		row := r.list()[0]
		if is, _ := row["instances"].([]any); len(is) != 2 || row["provision"] != nil {
			t.Errorf("%s", r.Raw)
		}
		r = search(a.access, "/v1/instances/search", map[string]any{"limit": 1, "extend": []string{"node", "node.provision"}}, 200)
		if n, _ := r.list()[0]["node"].(map[string]any); n == nil || n["name"] != "fsn-game-1" {
			t.Errorf("%s", r.Raw)
		}
	})

	t.Run("another organization's rows are never found", func(t *testing.T) {
		r := search(other.access, "/v1/nodes/search", map[string]any{"search": map[string]any{"name": []string{"game"}}}, 200)
		if l := r.list(); len(l) != 1 || l[0]["name"] != "fsn-game-9" {
			t.Errorf("%s", r.Raw)
		}
		r = search(other.access, "/v1/nodes/search", map[string]any{"filters": map[string]any{"id": []string{ids["fsn-game-1"]}}}, 200)
		if len(r.list()) != 0 || r.Body["meta"].(map[string]any)["total"] != float64(0) {
			t.Errorf("%s", r.Raw)
		}
	})

	t.Run("bad input is 400 naming the field", func(t *testing.T) {
		cases := []struct {
			body any
			want string
		}{
			{map[string]any{"filters": map[string]any{"colour": []string{"red"}}}, "filters.colour: unknown field; allowed: id, provision_id, name, fqdn"},
			{map[string]any{"filters": map[string]any{"vcpu": []string{"two"}}}, "filters.vcpu[0]: must be a whole number"},
			{map[string]any{"filters": map[string]any{"name": "one"}}, "filters.name: must be an array of values"},
			{map[string]any{"search": map[string]any{"name": []int{1}}}, "search.name: must be an array of strings"},
			{map[string]any{"greaterThan": map[string]any{"created_at": "monday"}}, "greaterThan.created_at: must be an RFC 3339 timestamp"},
			{map[string]any{"sortBy": "secret"}, `sortBy: unknown sort field "secret"`},
			{map[string]any{"extend": []string{"owner"}}, `extend[0]: unknown extend "owner"; allowed: instances, provision, provision.runs`}, // no DNS served here
			{map[string]any{"where": "1=1"}, "where: unknown field"},
			{map[string]any{"limit": 1000}, "limit: must be a whole number from 1 to 100"},
		}
		for _, c := range cases {
			r := search(a.access, "/v1/nodes/search", c.body, 400)
			if !strings.HasPrefix(r.errMsg(), c.want) {
				t.Errorf("%v: %q, want it to start with %q", c.body, r.errMsg(), c.want)
			}
		}
	})

	t.Run("each resource's list permission", func(t *testing.T) {
		tok := b.apiToken(a, "dns:read")
		for _, path := range []string{"/v1/nodes/search", "/v1/provision/search", "/v1/instances/search", "/v1/credentials/search", "/v1/admin/audit-logs/search"} {
			r := search(tok, path, map[string]any{}, 403)
			if !strings.Contains(r.errMsg(), "missing permission") {
				t.Errorf("%s: %s", path, r.Raw)
			}
		}
		nodes := b.apiToken(a, "nodes:read")
		search(nodes, "/v1/nodes/search", map[string]any{}, 200)
		// An extend needs the permission of what it reads.
		r := search(nodes, "/v1/nodes/search", map[string]any{"extend": []string{"provision"}}, 403)
		if !strings.Contains(r.errMsg(), "provision:read") {
			t.Errorf("%s", r.Raw)
		}
	})
}

func TestSearchOpenAPI(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	doc := loadDocument(t, b, "/openapi.json")
	for _, path := range []string{"/v1/provision/search", "/v1/nodes/search", "/v1/instances/search", "/v1/credentials/search",
		"/v1/ssh/certificates/search", "/v1/dns/records/search", "/v1/admin/audit-logs/search"} {
		item := doc.Paths.Value(path)
		if item == nil || item.Post == nil || item.Post.RequestBody == nil {
			t.Errorf("%s is not documented with a body", path)
			continue
		}
		body := item.Post.RequestBody.Value.Content.Get("application/json").Schema.Value
		for _, p := range []string{"filters", "search", "greaterThan", "lessThan", "sortBy", "sortDirection", "page", "limit", "extend"} {
			if body.Properties[p] == nil {
				t.Errorf("%s: no %s", path, p)
			}
		}
	}
	body := doc.Paths.Value("/v1/nodes/search").Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	if body.Properties["filters"].Value.Properties["fqdn"] == nil || body.Properties["search"].Value.Properties["fqdn"] == nil ||
		body.Properties["search"].Value.Properties["vcpu"] != nil || body.Properties["greaterThan"].Value.Properties["created_at"] == nil {
		t.Errorf("nodes fields: %v", body.Properties["filters"].Value.Properties)
	}
	var extends []string
	for _, e := range body.Properties["extend"].Value.Items.Value.Enum {
		extends = append(extends, e.(string))
	}
	if !slices.Equal(extends, []string{"dns_records", "instances", "provision", "provision.runs"}) {
		t.Errorf("nodes extends %v", extends)
	}
	var sorts []string
	for _, e := range body.Properties["sortBy"].Value.Enum {
		sorts = append(sorts, e.(string))
	}
	if !slices.Contains(sorts, "name") || slices.Contains(sorts, "fqdn") {
		t.Errorf("nodes sort fields %v", sorts)
	}
}
