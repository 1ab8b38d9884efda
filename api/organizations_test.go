package api_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

// orgPath is /v1/organizations/{id} followed by the parts.
func orgPath(id string, parts ...string) string {
	return "/v1/organizations/" + strings.Join(append([]string{id}, parts...), "/")
}

// strs reads a JSON array of strings.
func strs(v any) []string {
	raw, _ := v.([]any)
	out := make([]string, 0, len(raw))
	for _, x := range raw {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// meta returns the page, limit and total of a list answer.
func (r response) meta() (page, limit, total float64) {
	m, _ := r.Body["meta"].(map[string]any)
	page, _ = m["page"].(float64)
	limit, _ = m["limit"].(float64)
	total, _ = m["total"].(float64)
	return
}

// invite has by invite email to orgID with role and returns the answer.
func (b *bundle) invite(by account, orgID, email, role string) response {
	b.t.Helper()
	return b.expect(req{method: "POST", path: orgPath(orgID, "members"), token: by.access, body: map[string]string{"email": email, "role": role}}, 201)
}

// join registers email (with their own organization) and makes them a
// member of orgID with role through an invitation from by.
func (b *bundle) join(by account, orgID, email, role string) account {
	b.t.Helper()
	inv := b.invite(by, orgID, email, role)
	a := b.register(email)
	b.expect(req{method: "POST", path: "/v1/invites/" + inv.str("token") + "/accept", token: a.access}, 200)
	return a
}

// inOrg selects an organization for an access token.
func inOrg(orgID string) map[string]string { return map[string]string{"X-Organization-ID": orgID} }

// apiTokenIn mints an API token for a in orgID.
func (b *bundle) apiTokenIn(a account, orgID string, scopes ...string) string {
	b.t.Helper()
	resp := b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access, header: inOrg(orgID), body: map[string]any{"name": "test", "scopes": scopes}}, 201)
	return resp.str("token")
}

// memberRole reads a membership's role from the database ("" if none).
func (b *bundle) memberRole(orgID, userID string) string {
	b.t.Helper()
	var role string
	rows, err := b.pool.Query(b.t.Context(), "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2", orgID, userID)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(&role); err != nil {
			b.t.Fatal(err)
		}
	}
	return role
}

func (b *bundle) orgName(orgID string) string {
	b.t.Helper()
	var name string
	if err := b.pool.QueryRow(b.t.Context(), "SELECT name FROM organizations WHERE id = $1", orgID).Scan(&name); err != nil {
		b.t.Fatalf("organization %s: %v", orgID, err)
	}
	return name
}

func TestOrganizationCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	u := b.register("owner@example.com")

	r := b.expect(req{method: "POST", path: "/v1/organizations", token: u.access, body: map[string]string{"name": "  Acme  "}}, 201)
	id := r.str("id")
	if id == "" || r.str("name") != "Acme" || r.str("role") != "owner" || r.str("created_at") == "" {
		t.Fatalf("created organization %s", r.Raw)
	}
	if role := b.memberRole(id, u.userID); role != "owner" {
		t.Errorf("creator's membership role = %q, want owner", role)
	}
	if n := b.count("SELECT count(*) FROM memberships WHERE organization_id = $1", id); n != 1 {
		t.Errorf("new organization has %d members, want 1", n)
	}
	got := b.expect(req{method: "GET", path: orgPath(id), token: u.access}, 200)
	if got.str("id") != id || got.str("name") != "Acme" || got.str("role") != "owner" {
		t.Errorf("get %s", got.Raw)
	}

	tests := []struct {
		name    string
		body    any
		wantMsg string
	}{
		{"missing name", map[string]string{}, "name: is required"},
		{"blank name", map[string]string{"name": "   "}, "name: is required"},
		{"long name", map[string]string{"name": strings.Repeat("x", 101)}, "name: must be at most 100 characters"},
		{"unknown field", map[string]any{"name": "x", "owner": "someone"}, "owner: unknown field"},
		{"wrong type", map[string]any{"name": 7}, "name: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/organizations", token: u.access, body: tt.body}, 400)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
	t.Run("100 characters is allowed", func(t *testing.T) {
		b.expect(req{method: "POST", path: "/v1/organizations", token: u.access, body: map[string]string{"name": strings.Repeat("é", 100)}}, 201)
	})
	t.Run("unauthenticated", func(t *testing.T) {
		before := b.snapshot()
		b.expect(req{method: "POST", path: "/v1/organizations", body: map[string]string{"name": "x"}}, 401)
		b.unchanged(before)
	})
}

func TestOrganizationList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	u := b.register("owner@example.com")
	second := b.expect(req{method: "POST", path: "/v1/organizations", token: u.access, body: map[string]string{"name": "Second"}}, 201).str("id")
	third := b.expect(req{method: "POST", path: "/v1/organizations", token: u.access, body: map[string]string{"name": "Third"}}, 201).str("id")

	ids := func(r response) []string {
		var out []string
		for _, o := range r.list() {
			out = append(out, o["id"].(string))
			if o["role"] != "owner" {
				t.Errorf("organization %v role %v, want owner", o["id"], o["role"])
			}
		}
		return out
	}

	all := b.expect(req{method: "GET", path: "/v1/organizations", token: u.access}, 200)
	if got, want := ids(all), []string{u.orgID, second, third}; !slices.Equal(got, want) {
		t.Errorf("organizations %v, want %v", got, want)
	}
	if p, l, n := all.meta(); p != 1 || l != 20 || n != 3 {
		t.Errorf("meta page=%v limit=%v total=%v, want 1 20 3", p, l, n)
	}

	pages := []struct {
		query string
		want  []string
		page  float64
		limit float64
	}{
		{"?limit=2", []string{u.orgID, second}, 1, 2},
		{"?limit=2&page=2", []string{third}, 2, 2},
		{"?limit=1&page=2", []string{second}, 2, 1},
		{"?page=5", nil, 5, 20},
		{"?limit=100", []string{u.orgID, second, third}, 1, 100},
	}
	for _, tt := range pages {
		t.Run(tt.query, func(t *testing.T) {
			r := b.expect(req{method: "GET", path: "/v1/organizations" + tt.query, token: u.access}, 200)
			if got := ids(r); !slices.Equal(got, tt.want) {
				t.Errorf("organizations %v, want %v", got, tt.want)
			}
			if _, ok := r.Body["data"].([]any); !ok {
				t.Errorf("data is not an array: %s", r.Raw)
			}
			if p, l, n := r.meta(); p != tt.page || l != tt.limit || n != 3 {
				t.Errorf("meta page=%v limit=%v total=%v, want %v %v 3", p, l, n, tt.page, tt.limit)
			}
		})
	}

	invalid := []struct {
		query, field string
	}{
		{"?limit=101", "limit: "},
		{"?limit=0", "limit: "},
		{"?limit=-1", "limit: "},
		{"?limit=ten", "limit: "},
		{"?page=0", "page: "},
		{"?page=-3", "page: "},
		{"?page=x", "page: "},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.query, func(t *testing.T) {
			r := b.expect(req{method: "GET", path: "/v1/organizations" + tt.query, token: u.access}, 400)
			if !strings.HasPrefix(r.errMsg(), tt.field) {
				t.Errorf("error %q, want it to name %q", r.errMsg(), tt.field)
			}
		})
	}

	// Another user's organizations are not listed.
	other := b.register("other@example.com")
	r := b.expect(req{method: "GET", path: "/v1/organizations", token: other.access}, 200)
	if got := ids(r); !slices.Equal(got, []string{other.orgID}) {
		t.Errorf("other user's organizations %v, want only %s", got, other.orgID)
	}
	if _, _, n := r.meta(); n != 1 {
		t.Errorf("other user's total %v, want 1", n)
	}
}

func TestOrganizationGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	u := b.register("owner@example.com")
	r := b.expect(req{method: "GET", path: orgPath(u.orgID), token: u.access}, 200)
	if r.str("id") != u.orgID || r.str("role") != "owner" || r.str("name") == "" {
		t.Errorf("get %s", r.Raw)
	}
	for path, status := range map[string]int{orgPath("00000000-0000-0000-0000-000000000001"): 404, orgPath("not-a-uuid"): 400} {
		r := b.expect(req{method: "GET", path: path, token: u.access}, status)
		if r.errMsg() == "" {
			t.Errorf("%s: no JSON error: %s", path, r.Raw)
		}
	}
}

func TestOrganizationRename(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	member := b.join(owner, org, "member@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")

	for _, method := range []string{"PUT", "PATCH"} {
		t.Run(method+" by owner", func(t *testing.T) {
			name := "Renamed by " + method
			r := b.expect(req{method: method, path: orgPath(org), token: owner.access, body: map[string]string{"name": " " + name + " "}}, 200)
			if r.str("name") != name || r.str("id") != org || r.str("role") != "owner" {
				t.Errorf("rename answer %s", r.Raw)
			}
			if got := b.orgName(org); got != name {
				t.Errorf("stored name %q, want %q", got, name)
			}
			g := b.expect(req{method: "GET", path: orgPath(org), token: viewer.access}, 200)
			if g.str("name") != name || g.str("role") != "viewer" {
				t.Errorf("viewer sees %s", g.Raw)
			}
		})
	}
	t.Run("by admin", func(t *testing.T) {
		r := b.expect(req{method: "PATCH", path: orgPath(org), token: admin.access, body: map[string]string{"name": "Admin's name"}}, 200)
		if r.str("name") != "Admin's name" || r.str("role") != "admin" {
			t.Errorf("rename answer %s", r.Raw)
		}
	})

	refused := []struct {
		name    string
		method  string
		who     account
		body    any
		status  int
		wantMsg string
	}{
		{"viewer PUT", "PUT", viewer, map[string]string{"name": "Hijacked"}, 403, "organization:admin"},
		{"viewer PATCH", "PATCH", viewer, map[string]string{"name": "Hijacked"}, 403, "organization:admin"},
		{"member PUT", "PUT", member, map[string]string{"name": "Hijacked"}, 403, "organization:admin"},
		{"blank name", "PUT", owner, map[string]string{"name": " "}, 400, "name: is required"},
		{"long name", "PATCH", owner, map[string]string{"name": strings.Repeat("n", 101)}, 400, "name: must be at most 100"},
		{"unknown field", "PATCH", owner, map[string]any{"name": "x", "id": org}, 400, "id: unknown field"},
		{"no body", "PUT", owner, nil, 400, "request body is required"},
		{"unknown organization", "PUT", owner, map[string]string{"name": "x"}, 404, "organization not found"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			path := orgPath(org)
			if tt.status == 404 {
				path = orgPath("00000000-0000-0000-0000-000000000001")
			}
			before := b.snapshot()
			r := b.expect(req{method: tt.method, path: path, token: tt.who.access, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
			if got := b.orgName(org); got != "Admin's name" {
				t.Errorf("name changed to %q by a rejected request", got)
			}
		})
	}
}

func TestOrganizationDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := b.expect(req{method: "POST", path: "/v1/organizations", token: owner.access, body: map[string]string{"name": "Doomed"}}, 201).str("id")
	admin := b.join(owner, org, "admin@acme.test", "admin")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")
	b.invite(owner, org, "pending@acme.test", "member")
	b.apiTokenIn(admin, org, "nodes:read")

	for _, who := range []struct {
		name string
		a    account
	}{{"admin", admin}, {"viewer", viewer}} {
		t.Run(who.name+" cannot delete", func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "DELETE", path: orgPath(org), token: who.a.access}, 403)
			if !strings.Contains(r.errMsg(), "owner") {
				t.Errorf("error %q", r.errMsg())
			}
			b.unchanged(before)
		})
	}

	b.expect(req{method: "DELETE", path: orgPath(org), token: owner.access}, 204)
	for _, who := range []account{owner, admin, viewer} {
		b.expect(req{method: "GET", path: orgPath(org), token: who.access}, 404)
	}
	for _, table := range []string{"organizations WHERE id = $1", "memberships WHERE organization_id = $1", "invites WHERE organization_id = $1", "api_tokens WHERE organization_id = $1"} {
		if n := b.count("SELECT count(*) FROM "+table, org); n != 0 {
			t.Errorf("%d rows left in %s after delete", n, table)
		}
	}
	before := b.snapshot()
	b.expect(req{method: "DELETE", path: orgPath(org), token: owner.access}, 404)
	b.unchanged(before)
	// The owner's other organization is untouched.
	b.expect(req{method: "GET", path: orgPath(owner.orgID), token: owner.access}, 200)
	list := b.expect(req{method: "GET", path: "/v1/organizations", token: owner.access}, 200)
	if _, _, n := list.meta(); n != 1 || len(list.list()) != 1 {
		t.Errorf("organizations after delete: %s", list.Raw)
	}
}

func TestInviteAccept(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID

	inv := b.invite(owner, org, " Bob@Example.com ", "admin")
	token := inv.str("token")
	if !strings.HasPrefix(token, "sfi_") || inv.str("accept_url") != "/v1/invites/"+token+"/accept" ||
		inv.str("email") != "bob@example.com" || inv.str("role") != "admin" || inv.str("id") == "" || inv.str("expires_at") == "" {
		t.Fatalf("invite %s", inv.Raw)
	}
	// The token is shown once: the list does not carry it.
	list := b.expect(req{method: "GET", path: orgPath(org, "invites"), token: owner.access}, 200)
	if len(list.list()) != 1 || list.list()[0]["id"] != inv.str("id") || strings.Contains(string(list.Raw), token) {
		t.Fatalf("invites list %s", list.Raw)
	}
	if _, ok := list.list()[0]["token"]; ok {
		t.Errorf("invites list exposes a token field: %s", list.Raw)
	}

	bob := b.register("bob@example.com")
	carol := b.register("carol@example.com")
	accept := func(a account, tok string, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/invites/" + tok + "/accept", token: a.access}, status)
	}

	t.Run("wrong email", func(t *testing.T) {
		before := b.snapshot()
		r := accept(carol, token, 403)
		if !strings.Contains(r.errMsg(), "different email") {
			t.Errorf("error %q", r.errMsg())
		}
		b.unchanged(before)
		b.expect(req{method: "GET", path: orgPath(org), token: carol.access}, 404)
	})
	t.Run("unknown token", func(t *testing.T) {
		before := b.snapshot()
		accept(bob, "sfi_nope", 404)
		b.unchanged(before)
	})
	t.Run("accept", func(t *testing.T) {
		r := accept(bob, token, 200)
		if r.str("id") != org || r.str("role") != "admin" {
			t.Errorf("accept answer %s", r.Raw)
		}
		if role := b.memberRole(org, bob.userID); role != "admin" {
			t.Errorf("membership role %q, want admin", role)
		}
		g := b.expect(req{method: "GET", path: orgPath(org), token: bob.access}, 200)
		if g.str("role") != "admin" {
			t.Errorf("bob sees %s", g.Raw)
		}
		var found bool
		for _, m := range b.expect(req{method: "GET", path: orgPath(org, "members"), token: owner.access}, 200).list() {
			if m["user_id"] == bob.userID {
				found = m["email"] == "bob@example.com" && m["role"] == "admin"
			}
		}
		if !found {
			t.Error("bob is not listed as an admin member")
		}
		l := b.expect(req{method: "GET", path: orgPath(org, "invites"), token: owner.access}, 200)
		if len(l.list()) != 0 {
			t.Errorf("accepted invite still listed: %s", l.Raw)
		}
	})
	t.Run("second accept", func(t *testing.T) {
		before := b.snapshot()
		accept(bob, token, 404)
		b.unchanged(before)
	})
	t.Run("already a member", func(t *testing.T) {
		before := b.snapshot()
		r := b.expect(req{method: "POST", path: orgPath(org, "members"), token: owner.access, body: map[string]string{"email": "BOB@example.com", "role": "viewer"}}, 409)
		if !strings.Contains(r.errMsg(), "already a member") {
			t.Errorf("error %q", r.errMsg())
		}
		b.unchanged(before)
	})
	t.Run("accepting while already a member", func(t *testing.T) {
		// Invited before joining through another invitation: the second
		// accept is a conflict and the invite is kept.
		dave := b.register("dave@example.com")
		first := b.invite(owner, org, "dave@example.com", "viewer").str("token")
		second := b.invite(owner, org, "dave@example.com", "member").str("token")
		accept(dave, first, 200)
		before := b.snapshot()
		accept(dave, second, 409)
		b.unchanged(before)
		if role := b.memberRole(org, dave.userID); role != "viewer" {
			t.Errorf("role %q after the refused accept, want viewer", role)
		}
	})
	t.Run("carol's own invite", func(t *testing.T) {
		tok := b.invite(owner, org, "carol@example.com", "viewer").str("token")
		r := accept(carol, tok, 200)
		if r.str("role") != "viewer" {
			t.Errorf("accept %s", r.Raw)
		}
	})
}

func TestInviteRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	member := b.join(owner, org, "member@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")

	t.Run("default role is member", func(t *testing.T) {
		r := b.expect(req{method: "POST", path: orgPath(org, "members"), token: owner.access, body: map[string]string{"email": "default@acme.test"}}, 201)
		if r.str("role") != "member" {
			t.Errorf("invite %s", r.Raw)
		}
	})
	t.Run("owner may invite an owner", func(t *testing.T) {
		b.invite(owner, org, "co-owner@acme.test", "owner")
	})
	t.Run("admin may invite an admin", func(t *testing.T) {
		b.invite(admin, org, "another-admin@acme.test", "admin")
	})

	refused := []struct {
		name    string
		who     account
		body    any
		status  int
		wantMsg string
	}{
		{"admin invites an owner", admin, map[string]string{"email": "x@acme.test", "role": "owner"}, 403, "above your own"},
		{"member invites", member, map[string]string{"email": "x@acme.test", "role": "viewer"}, 403, "members:admin"},
		{"viewer invites", viewer, map[string]string{"email": "x@acme.test", "role": "viewer"}, 403, "members:admin"},
		{"invalid role", owner, map[string]string{"email": "x@acme.test", "role": "superuser"}, 400, "role: must be one of"},
		{"invalid email", owner, map[string]string{"email": "not-an-email", "role": "member"}, 400, "email: must be a valid email address"},
		{"missing email", owner, map[string]string{"role": "member"}, 400, "email: is required"},
		{"unknown field", owner, map[string]any{"email": "x@acme.test", "grants": []string{"nodes:write"}}, 400, "grants: unknown field"},
		{"already a member", admin, map[string]string{"email": "viewer@acme.test", "role": "member"}, 409, "already a member"},
		{"owner already a member", owner, map[string]string{"email": "owner@example.com", "role": "member"}, 409, "already a member"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: orgPath(org, "members"), token: tt.who.access, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
}

func TestInviteListDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	member := b.join(owner, org, "member@acme.test", "member")
	admin := b.join(owner, org, "admin@acme.test", "admin")

	first := b.invite(owner, org, "one@acme.test", "viewer")
	second := b.invite(owner, org, "two@acme.test", "member")
	third := b.invite(admin, org, "three@acme.test", "admin")

	r := b.expect(req{method: "GET", path: orgPath(org, "invites"), token: admin.access}, 200)
	var emails []string
	for _, inv := range r.list() {
		emails = append(emails, inv["email"].(string))
	}
	if !slices.Equal(emails, []string{"one@acme.test", "two@acme.test", "three@acme.test"}) {
		t.Errorf("invites %v", emails)
	}
	if p, l, n := r.meta(); p != 1 || l != 20 || n != 3 {
		t.Errorf("meta %v %v %v", p, l, n)
	}
	r = b.expect(req{method: "GET", path: orgPath(org, "invites") + "?limit=1&page=3", token: owner.access}, 200)
	if len(r.list()) != 1 || r.list()[0]["id"] != third.str("id") {
		t.Errorf("page 3 of 1: %s", r.Raw)
	}
	r = b.expect(req{method: "GET", path: orgPath(org, "invites") + "?limit=101", token: owner.access}, 400)
	if !strings.HasPrefix(r.errMsg(), "limit:") {
		t.Errorf("error %q", r.errMsg())
	}

	t.Run("member cannot list or delete", func(t *testing.T) {
		b.expect(req{method: "GET", path: orgPath(org, "invites"), token: member.access}, 403)
		before := b.snapshot()
		b.expect(req{method: "DELETE", path: orgPath(org, "invites", first.str("id")), token: member.access}, 403)
		b.unchanged(before)
	})
	t.Run("delete", func(t *testing.T) {
		b.expect(req{method: "DELETE", path: orgPath(org, "invites", second.str("id")), token: admin.access}, 204)
		if n := b.count("SELECT count(*) FROM invites WHERE id = $1", second.str("id")); n != 0 {
			t.Errorf("deleted invite still stored")
		}
		r := b.expect(req{method: "GET", path: orgPath(org, "invites"), token: owner.access}, 200)
		if _, _, n := r.meta(); n != 2 || len(r.list()) != 2 {
			t.Errorf("invites after delete %s", r.Raw)
		}
		// A withdrawn invite cannot be accepted.
		two := b.register("two@acme.test")
		before := b.snapshot()
		b.expect(req{method: "POST", path: "/v1/invites/" + second.str("token") + "/accept", token: two.access}, 404)
		b.unchanged(before)
	})
	for path, status := range map[string]int{
		orgPath(org, "invites", second.str("id")):                       404, // already deleted
		orgPath(org, "invites", "00000000-0000-0000-0000-000000000001"): 404, // never existed
		orgPath(org, "invites", "not-a-uuid"):                           400,
	} {
		t.Run("missing "+path, func(t *testing.T) {
			before := b.snapshot()
			b.expect(req{method: "DELETE", path: path, token: owner.access}, status)
			b.unchanged(before)
		})
	}
}

func TestMembersList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")
	b.invite(owner, org, "pending@acme.test", "member") // not a member until accepted

	for _, who := range []account{owner, admin, viewer} {
		r := b.expect(req{method: "GET", path: orgPath(org, "members"), token: who.access}, 200)
		got := map[string]string{}
		for _, m := range r.list() {
			got[m["email"].(string)] = m["role"].(string)
			if m["user_id"] == "" || m["joined_at"] == nil {
				t.Errorf("member %v", m)
			}
			if _, ok := m["grants"].([]any); !ok {
				t.Errorf("member grants not an array: %v", m)
			}
		}
		want := map[string]string{"owner@example.com": "owner", "admin@acme.test": "admin", "viewer@acme.test": "viewer"}
		if len(got) != len(want) {
			t.Errorf("%s sees members %v, want %v", who.email, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s sees %s as %q, want %q", who.email, k, got[k], v)
			}
		}
		if p, l, n := r.meta(); p != 1 || l != 20 || n != 3 {
			t.Errorf("meta %v %v %v", p, l, n)
		}
	}
	r := b.expect(req{method: "GET", path: orgPath(org, "members") + "?limit=2&page=2", token: owner.access}, 200)
	if len(r.list()) != 1 || r.list()[0]["email"] != "viewer@acme.test" {
		t.Errorf("page 2 of 2: %s", r.Raw)
	}
	if _, _, n := r.meta(); n != 3 {
		t.Errorf("total %v", n)
	}
	for _, q := range []string{"?limit=101", "?page=0"} {
		r := b.expect(req{method: "GET", path: orgPath(org, "members") + q, token: owner.access}, 400)
		if !strings.HasPrefix(r.errMsg(), strings.TrimPrefix(strings.SplitN(q, "=", 2)[0], "?")+":") {
			t.Errorf("%s: error %q", q, r.errMsg())
		}
	}
}

func TestMemberRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	member := b.join(owner, org, "member@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")

	setRole := func(by account, target account, role string, status int) response {
		t.Helper()
		return b.expect(req{method: "PUT", path: orgPath(org, "members", target.userID, "role"), token: by.access, body: map[string]string{"role": role}}, status)
	}

	t.Run("admin changes a member", func(t *testing.T) {
		r := setRole(admin, member, "viewer", 200)
		if r.str("role") != "viewer" || r.str("user_id") != member.userID || r.str("email") != "member@acme.test" {
			t.Errorf("answer %s", r.Raw)
		}
		if got := b.memberRole(org, member.userID); got != "viewer" {
			t.Errorf("stored role %q", got)
		}
		setRole(admin, member, "member", 200)
		if got := b.memberRole(org, member.userID); got != "member" {
			t.Errorf("stored role %q", got)
		}
	})

	refused := []struct {
		name    string
		by      account
		target  string
		role    any
		status  int
		wantMsg string
	}{
		{"viewer changes a role", viewer, member.userID, "viewer", 403, "members:admin"},
		{"member changes a role", member, viewer.userID, "member", 403, "members:admin"},
		{"admin promotes to owner", admin, member.userID, "owner", 403, "only an owner"},
		{"admin promotes self to owner", admin, admin.userID, "owner", 403, "only an owner"},
		{"admin demotes the owner", admin, owner.userID, "admin", 403, "only an owner"},
		{"last owner demotes self", owner, owner.userID, "admin", 409, "at least one owner"},
		{"invalid role", owner, member.userID, "root", 400, "role: must be one of"},
		{"missing role", owner, member.userID, nil, 400, "role: must be one of"},
		{"not a member", owner, "00000000-0000-0000-0000-000000000001", "viewer", 404, "member not found"},
		{"malformed member id", owner, "nope", "viewer", 400, "user_id: must be a member id: a canonical lowercase UUID"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{}
			if tt.role != nil {
				body["role"] = tt.role
			}
			before := b.snapshot()
			r := b.expect(req{method: "PUT", path: orgPath(org, "members", tt.target, "role"), token: tt.by.access, body: body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
	if got := b.memberRole(org, owner.userID); got != "owner" {
		t.Fatalf("owner's role is %q after refused changes", got)
	}

	t.Run("owners manage owners", func(t *testing.T) {
		setRole(owner, admin, "owner", 200)
		// Two owners: either may step down, and the other owner may demote them.
		setRole(admin, owner, "admin", 200)
		if got := b.memberRole(org, owner.userID); got != "admin" {
			t.Errorf("former owner's role %q", got)
		}
		before := b.snapshot()
		setRole(admin, admin, "member", 409) // now the last owner
		b.unchanged(before)
		// The demoted owner (an admin now) cannot take the role back.
		before = b.snapshot()
		setRole(owner, owner, "owner", 403)
		b.unchanged(before)
	})
}

// A member given members:admin manages members, but only up to their own
// role: they cannot promote anyone (themself included) above it, nor change or
// remove a member above it.
func TestMemberAdminGrantStaysBelowRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	manager := b.join(owner, org, "manager@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")
	b.expect(req{method: "PUT", path: orgPath(org, "members", manager.userID, "permissions"), token: owner.access, body: map[string]any{"grants": []string{"members:admin"}}}, 200)

	refused := []struct {
		name, method, path string
		body               any
		wantMsg            string
	}{
		{"promote self to admin", "PUT", orgPath(org, "members", manager.userID, "role"), map[string]string{"role": "admin"}, "above your own"},
		{"promote a viewer to admin", "PUT", orgPath(org, "members", viewer.userID, "role"), map[string]string{"role": "admin"}, "above your own"},
		{"demote an admin", "PUT", orgPath(org, "members", admin.userID, "role"), map[string]string{"role": "viewer"}, "above your role"},
		{"remove an admin", "DELETE", orgPath(org, "members", admin.userID), nil, "above your role"},
		{"invite an admin", "POST", orgPath(org, "members"), map[string]string{"email": "x@acme.test", "role": "admin"}, "above your own"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: tt.method, path: tt.path, token: manager.access, body: tt.body}, 403)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
	if got := b.memberRole(org, manager.userID); got != "member" {
		t.Errorf("manager's role %q", got)
	}
	if got := b.memberRole(org, admin.userID); got != "admin" {
		t.Errorf("admin's role %q", got)
	}
	// At or below their own role they may act.
	r := b.expect(req{method: "PUT", path: orgPath(org, "members", viewer.userID, "role"), token: manager.access, body: map[string]string{"role": "member"}}, 200)
	if r.str("role") != "member" {
		t.Errorf("answer %s", r.Raw)
	}
	b.expect(req{method: "DELETE", path: orgPath(org, "members", viewer.userID), token: manager.access}, 204)
}

// Two owners stepping down at the same time must not leave the organization
// without an owner.
func TestMemberLastOwnerConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	a := b.register("a@example.com")
	org := a.orgID
	c := b.join(a, org, "c@acme.test", "owner")
	owners := func() int {
		return b.count("SELECT count(*) FROM memberships WHERE organization_id = $1 AND role = 'owner'", org)
	}
	for i := range 15 {
		// Each owner demotes the other (odd rounds: each demotes themself).
		targets := [2]account{c, a}
		if i%2 == 1 {
			targets = [2]account{a, c}
		}
		var wg sync.WaitGroup
		var statuses [2]int
		for j, by := range [2]account{a, c} {
			wg.Go(func() {
				r, err := b.try(req{method: "PUT", path: orgPath(org, "members", targets[j].userID, "role"), token: by.access, body: map[string]string{"role": "admin"}})
				if err != nil {
					t.Error(err)
					return
				}
				statuses[j] = r.Status
			})
		}
		wg.Wait()
		if n := owners(); n != 1 {
			t.Fatalf("round %d: %d owners after two concurrent demotions (statuses %v)", i, n, statuses)
		}
		// The loser is refused: 409 (last owner), or 403 if it was itself
		// demoted before it was checked.
		if s := statuses; !(s[0] == 200 && (s[1] == 409 || s[1] == 403) || s[1] == 200 && (s[0] == 409 || s[0] == 403)) {
			t.Fatalf("round %d: statuses %v, want one 200 and one 409 or 403", i, s)
		}
		// The remaining owner promotes the other back.
		for _, pair := range [][2]account{{a, c}, {c, a}} {
			if b.memberRole(org, pair[0].userID) == "owner" {
				b.expect(req{method: "PUT", path: orgPath(org, "members", pair[1].userID, "role"), token: pair[0].access, body: map[string]string{"role": "owner"}}, 200)
			}
		}
		if n := owners(); n != 2 {
			t.Fatalf("round %d: %d owners after restoring", i, n)
		}
	}
	// Both owners leaving at once: one of them stays.
	var wg sync.WaitGroup
	for _, who := range []account{a, c} {
		wg.Go(func() {
			if _, err := b.try(req{method: "DELETE", path: orgPath(org, "members", who.userID), token: who.access}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := owners(); n != 1 {
		t.Errorf("%d owners after both tried to leave", n)
	}
}

func TestMemberRemove(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	member := b.join(owner, org, "member@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")
	leaver := b.join(owner, org, "leaver@acme.test", "viewer")

	remove := func(by account, target string, status int) response {
		t.Helper()
		return b.expect(req{method: "DELETE", path: orgPath(org, "members", target), token: by.access}, status)
	}

	refused := []struct {
		name    string
		by      account
		target  string
		status  int
		wantMsg string
	}{
		{"viewer removes a member", viewer, member.userID, 403, "members:admin"},
		{"member removes a viewer", member, viewer.userID, 403, "members:admin"},
		{"admin removes the owner", admin, owner.userID, 403, "only an owner"},
		{"last owner removes self", owner, owner.userID, 409, "at least one owner"},
		{"not a member", owner, "00000000-0000-0000-0000-000000000001", 404, "member not found"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := remove(tt.by, tt.target, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}

	t.Run("a viewer leaves", func(t *testing.T) {
		remove(leaver, leaver.userID, 204)
		if got := b.memberRole(org, leaver.userID); got != "" {
			t.Errorf("still a %s", got)
		}
		b.expect(req{method: "GET", path: orgPath(org), token: leaver.access}, 404)
		// Their own organization is untouched.
		b.expect(req{method: "GET", path: orgPath(leaver.orgID), token: leaver.access}, 200)
	})
	t.Run("admin removes a member", func(t *testing.T) {
		remove(admin, member.userID, 204)
		b.expect(req{method: "GET", path: orgPath(org), token: member.access}, 404)
		before := b.snapshot()
		remove(admin, member.userID, 404)
		b.unchanged(before)
	})
	t.Run("owner removes an admin", func(t *testing.T) {
		remove(owner, admin.userID, 204)
		b.expect(req{method: "GET", path: orgPath(org, "members"), token: admin.access}, 404)
	})
	t.Run("an owner leaves when another owner remains", func(t *testing.T) {
		b.expect(req{method: "PUT", path: orgPath(org, "members", viewer.userID, "role"), token: owner.access, body: map[string]string{"role": "owner"}}, 200)
		remove(owner, owner.userID, 204)
		if got := b.memberRole(org, viewer.userID); got != "owner" {
			t.Errorf("remaining owner's role %q", got)
		}
		r := b.expect(req{method: "GET", path: orgPath(org, "members"), token: viewer.access}, 200)
		if _, _, n := r.meta(); n != 1 {
			t.Errorf("members left: %s", r.Raw)
		}
	})
}

func TestPermissionsCatalog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	b.expect(req{method: "GET", path: "/v1/permissions"}, 401)
	r := b.expect(req{method: "GET", path: "/v1/permissions", token: a.access}, 200)
	var keys []string
	for _, p := range r.list() {
		keys = append(keys, p["key"].(string))
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("permission %v without description", p["key"])
		}
	}
	want := []string{"nodes:read", "nodes:write", "provision:read", "provision:write", "credentials:read", "credentials:write",
		"dns:read", "dns:write", "ssh:sign", "ssh:admin", "planner:read", "planner:write", "members:read", "members:admin", "organization:admin", "audit:read", "state:write"}
	if !slices.Equal(keys, want) {
		t.Errorf("catalog %v, want %v", keys, want)
	}
	roles, _ := r.Body["roles"].(map[string]any)
	viewer := []string{"credentials:read", "dns:read", "members:read", "nodes:read", "planner:read", "provision:read"}
	member := []string{"credentials:read", "dns:read", "dns:write", "members:read", "nodes:read", "nodes:write", "planner:read", "planner:write", "provision:read", "provision:write", "ssh:sign", "state:write"}
	all := slices.Sorted(slices.Values(want))
	for role, perms := range map[string][]string{"owner": all, "admin": all, "member": member, "viewer": viewer} {
		if got := strs(roles[role]); !slices.Equal(got, perms) {
			t.Errorf("role %s: %v, want %v", role, got, perms)
		}
	}
	if len(roles) != 4 {
		t.Errorf("roles %v", roles)
	}
}

func TestMemberPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	admin := b.join(owner, org, "admin@acme.test", "admin")
	member := b.join(owner, org, "member@acme.test", "member")
	viewer := b.join(owner, org, "viewer@acme.test", "viewer")
	viewerRole := []string{"credentials:read", "dns:read", "members:read", "nodes:read", "planner:read", "provision:read"}

	perms := func(by account, target string) response {
		t.Helper()
		return b.expect(req{method: "GET", path: orgPath(org, "members", target, "permissions"), token: by.access}, 200)
	}
	setGrants := func(by account, target string, body any, status int) response {
		t.Helper()
		return b.expect(req{method: "PUT", path: orgPath(org, "members", target, "permissions"), token: by.access, body: body}, status)
	}
	storedGrants := func(userID string) []string {
		t.Helper()
		var g []string
		if err := b.pool.QueryRow(t.Context(), "SELECT grants FROM memberships WHERE organization_id = $1 AND user_id = $2", org, userID).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}

	t.Run("role only", func(t *testing.T) {
		for _, by := range []account{owner, viewer, member} { // members:read, or oneself
			r := perms(by, viewer.userID)
			if r.str("role") != "viewer" || r.str("user_id") != viewer.userID ||
				!slices.Equal(strs(r.Body["role_permissions"]), viewerRole) ||
				!slices.Equal(strs(r.Body["effective"]), viewerRole) || len(strs(r.Body["grants"])) != 0 {
				t.Errorf("%s sees %s", by.email, r.Raw)
			}
		}
		if _, ok := perms(owner, viewer.userID).Body["grants"].([]any); !ok {
			t.Error("grants is not an array")
		}
	})
	t.Run("grant adds to the role", func(t *testing.T) {
		r := setGrants(owner, viewer.userID, map[string]any{"grants": []string{"nodes:write"}}, 200)
		eff := strs(r.Body["effective"])
		if !slices.Contains(eff, "nodes:write") || len(eff) != len(viewerRole)+1 ||
			!slices.Equal(strs(r.Body["grants"]), []string{"nodes:write"}) ||
			!slices.Equal(strs(r.Body["role_permissions"]), viewerRole) {
			t.Errorf("answer %s", r.Raw)
		}
		if g := perms(viewer, viewer.userID); !slices.Contains(strs(g.Body["effective"]), "nodes:write") {
			t.Errorf("GET after grant %s", g.Raw)
		}
		// The viewer's session in the organization now holds it.
		w := b.expect(req{method: "GET", path: "/v1/whoami", token: viewer.access, header: inOrg(org)}, 200)
		if !slices.Contains(strs(w.Body["scopes"]), "nodes:write") {
			t.Errorf("whoami scopes %s", w.Raw)
		}
	})
	t.Run("grants are replaced, deduplicated and sorted", func(t *testing.T) {
		r := setGrants(admin, viewer.userID, map[string]any{"grants": []string{"ssh:sign", "nodes:write", "ssh:sign"}}, 200)
		if got := strs(r.Body["grants"]); !slices.Equal(got, []string{"nodes:write", "ssh:sign"}) {
			t.Errorf("grants %v", got)
		}
		if got := storedGrants(viewer.userID); !slices.Equal(got, []string{"nodes:write", "ssh:sign"}) {
			t.Errorf("stored grants %v", got)
		}
	})

	refused := []struct {
		name    string
		by      account
		target  string
		body    any
		status  int
		wantMsg string
	}{
		{"unknown permission", owner, viewer.userID, map[string]any{"grants": []string{"nodes:write", "nodes:fly"}}, 400, "grants[1]: unknown permission"},
		{"missing grants", owner, viewer.userID, map[string]any{}, 400, "grants: is required"},
		{"grants not an array", owner, viewer.userID, map[string]any{"grants": "nodes:write"}, 400, "grants: must be an array"},
		{"viewer grants", viewer, viewer.userID, map[string]any{"grants": []string{"nodes:read"}}, 403, "members:admin"},
		{"member grants", member, viewer.userID, map[string]any{"grants": []string{"nodes:write"}}, 403, "members:admin"},
		{"not a member", owner, "00000000-0000-0000-0000-000000000001", map[string]any{"grants": []string{"nodes:read"}}, 404, "member not found"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := setGrants(tt.by, tt.target, tt.body, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
			if got := storedGrants(viewer.userID); !slices.Equal(got, []string{"nodes:write", "ssh:sign"}) {
				t.Errorf("grants changed to %v by a rejected request", got)
			}
		})
	}

	t.Run("cannot grant what you do not hold", func(t *testing.T) {
		// A member given members:admin may manage grants, but only with
		// permissions they hold themselves.
		setGrants(owner, member.userID, map[string]any{"grants": []string{"members:admin"}}, 200)
		before := b.snapshot()
		r := setGrants(member, viewer.userID, map[string]any{"grants": []string{"nodes:write", "audit:read"}}, 403)
		if !strings.Contains(r.errMsg(), "audit:read") {
			t.Errorf("error %q", r.errMsg())
		}
		b.unchanged(before)
		if got := storedGrants(viewer.userID); !slices.Equal(got, []string{"nodes:write", "ssh:sign"}) {
			t.Errorf("grants changed to %v", got)
		}
		// Nor touch the grants of a member above their role.
		before = b.snapshot()
		setGrants(member, admin.userID, map[string]any{"grants": []string{"nodes:write"}}, 403)
		b.expect(req{method: "DELETE", path: orgPath(org, "members", admin.userID, "permissions", "nodes:write"), token: member.access}, 403)
		b.unchanged(before)
		// What they hold, they may grant.
		r = setGrants(member, viewer.userID, map[string]any{"grants": []string{"nodes:write", "dns:write"}}, 200)
		if got := strs(r.Body["grants"]); !slices.Equal(got, []string{"dns:write", "nodes:write"}) {
			t.Errorf("grants %v", got)
		}
	})
	t.Run("delete a grant", func(t *testing.T) {
		path := orgPath(org, "members", viewer.userID, "permissions", "nodes:write")
		before := b.snapshot()
		b.expect(req{method: "DELETE", path: path, token: viewer.access}, 403) // no members:admin
		b.unchanged(before)

		r := b.expect(req{method: "DELETE", path: path, token: owner.access}, 200)
		if slices.Contains(strs(r.Body["effective"]), "nodes:write") || !slices.Equal(strs(r.Body["grants"]), []string{"dns:write"}) {
			t.Errorf("answer %s", r.Raw)
		}
		if got := storedGrants(viewer.userID); !slices.Equal(got, []string{"dns:write"}) {
			t.Errorf("stored grants %v", got)
		}
		for _, p := range []string{"nodes:write", "nodes:read", "nodes:fly"} { // gone, role-only, unknown
			before := b.snapshot()
			r := b.expect(req{method: "DELETE", path: orgPath(org, "members", viewer.userID, "permissions", p), token: owner.access}, 404)
			if !strings.Contains(r.errMsg(), "grant not found") {
				t.Errorf("%s: error %q", p, r.errMsg())
			}
			b.unchanged(before)
		}
	})
	t.Run("empty list removes every grant", func(t *testing.T) {
		r := setGrants(owner, viewer.userID, map[string]any{"grants": []string{}}, 200)
		if !slices.Equal(strs(r.Body["effective"]), viewerRole) {
			t.Errorf("answer %s", r.Raw)
		}
		if got := storedGrants(viewer.userID); len(got) != 0 {
			t.Errorf("stored grants %v", got)
		}
	})
	t.Run("unknown member", func(t *testing.T) {
		b.expect(req{method: "GET", path: orgPath(org, "members", "00000000-0000-0000-0000-000000000001", "permissions"), token: owner.access}, 404)
	})
}

func TestAPITokensCannotManageOrganizations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	member := b.join(owner, org, "member@acme.test", "member")
	invitee := b.register("invitee@example.com")
	invite := b.invite(owner, org, "invitee@example.com", "viewer")
	// The owner's token holds the management permissions, yet a token
	// cannot manage members or organizations.
	tok := b.apiToken(owner, "members:read", "members:admin", "organization:admin")
	inviteeTok := b.apiToken(invitee, "nodes:read")

	tests := []struct {
		name, method, path string
		token              string
		body               any
	}{
		{"create organization", "POST", "/v1/organizations", tok, map[string]string{"name": "Via token"}},
		{"delete organization", "DELETE", orgPath(org), tok, nil},
		{"invite", "POST", orgPath(org, "members"), tok, map[string]string{"email": "new@acme.test", "role": "viewer"}},
		{"change role", "PUT", orgPath(org, "members", member.userID, "role"), tok, map[string]string{"role": "viewer"}},
		{"remove member", "DELETE", orgPath(org, "members", member.userID), tok, nil},
		{"set grants", "PUT", orgPath(org, "members", member.userID, "permissions"), tok, map[string]any{"grants": []string{"audit:read"}}},
		{"delete invite", "DELETE", orgPath(org, "invites", invite.str("id")), tok, nil},
		{"accept unknown invite", "POST", "/v1/invites/x/accept", tok, nil},
		{"accept real invite", "POST", "/v1/invites/" + invite.str("token") + "/accept", inviteeTok, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: tt.method, path: tt.path, token: tt.token, body: tt.body}, 403)
			if !strings.Contains(r.errMsg(), "API tokens cannot") {
				t.Errorf("error %q", r.errMsg())
			}
			b.unchanged(before)
		})
	}
	if got := b.memberRole(org, member.userID); got != "member" {
		t.Errorf("member's role %q", got)
	}
	// The invite is still there for the invitee's own session.
	b.expect(req{method: "POST", path: "/v1/invites/" + invite.str("token") + "/accept", token: invitee.access}, 200)
	// Reading with the token still works.
	b.expect(req{method: "GET", path: orgPath(org, "members"), token: tok}, 200)
}
