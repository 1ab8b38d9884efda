package api_test

import (
	"slices"
	"strings"
	"testing"
)

// tenantRoutes is every organization route of orgID, aimed at member and invite.
func tenantRoutes(orgID, member, inviteID string) []req {
	return []req{
		{method: "GET", path: orgPath(orgID)},
		{method: "PUT", path: orgPath(orgID), body: map[string]string{"name": "Taken over"}},
		{method: "PATCH", path: orgPath(orgID), body: map[string]string{"name": "Taken over"}},
		{method: "DELETE", path: orgPath(orgID)},
		{method: "GET", path: orgPath(orgID, "members")},
		{method: "POST", path: orgPath(orgID, "members"), body: map[string]string{"email": "spy@evil.test", "role": "viewer"}},
		{method: "DELETE", path: orgPath(orgID, "members", member)},
		{method: "PUT", path: orgPath(orgID, "members", member, "role"), body: map[string]string{"role": "viewer"}},
		{method: "GET", path: orgPath(orgID, "members", member, "permissions")},
		{method: "PUT", path: orgPath(orgID, "members", member, "permissions"), body: map[string]any{"grants": []string{"nodes:read"}}},
		{method: "DELETE", path: orgPath(orgID, "members", member, "permissions", "nodes:write")},
		{method: "GET", path: orgPath(orgID, "invites")},
		{method: "DELETE", path: orgPath(orgID, "invites", inviteID)},
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com") // a platform administrator, too
	orgA := alice.orgID
	b.expect(req{method: "PUT", path: orgPath(orgA), token: alice.access, body: map[string]string{"name": "Alice Secret Org"}}, 200)
	member := b.join(alice, orgA, "member@alice.test", "member")
	b.expect(req{method: "PUT", path: orgPath(orgA, "members", member.userID, "permissions"), token: alice.access, body: map[string]any{"grants": []string{"nodes:write"}}}, 200)
	invite := b.invite(alice, orgA, "pending@alice.test", "viewer")
	aliceTok := b.apiToken(alice, "nodes:read")
	bob := b.register("bob@example.com")
	bobTok := b.apiToken(bob, "members:read", "members:admin", "organization:admin")

	// Nothing of Alice's organization may show in an answer to Bob.
	secrets := []string{orgA, "Alice Secret Org", "alice@example.com", "member@alice.test", "pending@alice.test", alice.userID, member.userID, invite.str("id")}
	leaks := func(t *testing.T, r response) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(string(r.Raw), s) {
				t.Errorf("answer leaks %q: %s", s, r.Raw)
			}
		}
	}

	for _, target := range []struct{ name, id string }{{"member", member.userID}, {"owner", alice.userID}, {"self", bob.userID}} {
		for _, rq := range tenantRoutes(orgA, target.id, invite.str("id")) {
			t.Run(target.name+" "+rq.method+" "+strings.TrimPrefix(rq.path, orgPath(orgA)), func(t *testing.T) {
				rq.token = bob.access
				before := b.snapshot()
				r := b.expect(rq, 404)
				if r.errMsg() == "" {
					t.Errorf("no JSON error: %s", r.Raw)
				}
				leaks(t, r)
				b.unchanged(before)
			})
		}
	}
	// Bob's API token, with every management scope in his own organization, is refused the same way
	// (or as a token, never with data).
	for _, rq := range tenantRoutes(orgA, member.userID, invite.str("id")) {
		t.Run("token "+rq.method+" "+strings.TrimPrefix(rq.path, orgPath(orgA)), func(t *testing.T) {
			rq.token = bobTok
			before := b.snapshot()
			r := b.do(rq)
			if r.Status != 404 && r.Status != 403 {
				t.Errorf("status %d, want 404 (or 403 for a token): %s", r.Status, r.Raw)
			}
			leaks(t, r)
			b.unchanged(before)
		})
	}
	t.Run("X-Organization-ID of another organization", func(t *testing.T) {
		for _, rq := range []req{
			{method: "GET", path: "/v1/users/me"},
			{method: "GET", path: "/v1/whoami"},
			{method: "GET", path: "/v1/organizations"},
			{method: "GET", path: "/v1/api-tokens"},
			{method: "POST", path: "/v1/api-tokens", body: map[string]any{"name": "sneaky", "scopes": []string{"members:read"}}},
		} {
			before := b.snapshot()
			for _, tok := range []string{bob.access, bobTok} {
				rq.token, rq.header = tok, inOrg(orgA)
				r := b.expect(rq, 404)
				leaks(t, r)
			}
			b.unchanged(before)
		}
	})
	t.Run("Bob's lists", func(t *testing.T) {
		for _, path := range []string{"/v1/organizations", "/v1/users/me", "/v1/whoami", "/v1/api-tokens",
			orgPath(bob.orgID, "members"), orgPath(bob.orgID, "invites"), "/v1/organizations?limit=100"} {
			for _, tok := range []string{bob.access, bobTok} {
				if tok == bobTok && path == "/v1/api-tokens" {
					continue // a token cannot list tokens
				}
				r := b.expect(req{method: "GET", path: path, token: tok}, 200)
				leaks(t, r)
			}
		}
		orgs := b.expect(req{method: "GET", path: "/v1/organizations", token: bob.access}, 200)
		if l := orgs.list(); len(l) != 1 || l[0]["id"] != bob.orgID {
			t.Errorf("Bob's organizations %s", orgs.Raw)
		}
		if _, _, n := orgs.meta(); n != 1 {
			t.Errorf("Bob's organization total %v", n)
		}
		members := b.expect(req{method: "GET", path: orgPath(bob.orgID, "members"), token: bob.access}, 200)
		if l := members.list(); len(l) != 1 || l[0]["user_id"] != bob.userID {
			t.Errorf("Bob's members %s", members.Raw)
		}
		me := b.expect(req{method: "GET", path: "/v1/users/me", token: bob.access}, 200)
		if o, _ := me.Body["organizations"].([]any); len(o) != 1 {
			t.Errorf("Bob's me %s", me.Raw)
		}
		// Platform-wide lists are for platform administrators only.
		b.expect(req{method: "GET", path: "/v1/users", token: bob.access}, 403)
	})
	t.Run("Bob's token in Alice's organization", func(t *testing.T) {
		// A token is bound to its organization whatever the caller asks for.
		before := b.snapshot()
		b.expect(req{method: "GET", path: "/v1/whoami", token: aliceTok, header: inOrg(bob.orgID)}, 404)
		b.expect(req{method: "GET", path: orgPath(bob.orgID), token: aliceTok}, 404)
		b.unchanged(before)
	})
	t.Run("the platform administrator is no member either", func(t *testing.T) {
		for _, rq := range tenantRoutes(bob.orgID, bob.userID, "00000000-0000-0000-0000-000000000001") {
			rq.token = alice.access
			before := b.snapshot()
			b.expect(rq, 404)
			b.unchanged(before)
		}
	})

	// Alice's organization is intact.
	if got := b.orgName(orgA); got != "Alice Secret Org" {
		t.Errorf("Alice's organization renamed to %q", got)
	}
	if got := b.memberRole(orgA, member.userID); got != "member" {
		t.Errorf("member's role %q", got)
	}
	r := b.expect(req{method: "GET", path: orgPath(orgA, "members", member.userID, "permissions"), token: alice.access}, 200)
	if !slices.Equal(strs(r.Body["grants"]), []string{"nodes:write"}) {
		t.Errorf("member's grants %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM invites WHERE organization_id = $1", orgA); n != 1 {
		t.Errorf("Alice's invites: %d", n)
	}
	if n := b.count("SELECT count(*) FROM memberships WHERE organization_id = $1", orgA); n != 2 {
		t.Errorf("Alice's members: %d", n)
	}
}

func TestTenantAPITokenBoundToOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	orgA := owner.orgID
	// Mia belongs to both her own organization and orgA.
	mia := b.join(owner, orgA, "mia@example.com", "admin")
	orgB := mia.orgID
	tokB := b.apiToken(mia, "members:read", "organization:admin")
	tokA := b.apiTokenIn(mia, orgA, "members:read")

	// Her session may use either organization.
	for _, org := range []string{orgA, orgB} {
		w := b.expect(req{method: "GET", path: "/v1/whoami", token: mia.access, header: inOrg(org)}, 200)
		if o, _ := w.Body["organization"].(map[string]any); o["id"] != org {
			t.Errorf("whoami in %s: %s", org, w.Raw)
		}
	}
	// Each token only its own.
	tests := []struct {
		name   string
		token  string
		rq     req
		status int
	}{
		{"B token, header A, whoami", tokB, req{method: "GET", path: "/v1/whoami", header: inOrg(orgA)}, 404},
		{"B token, header A, me", tokB, req{method: "GET", path: "/v1/users/me", header: inOrg(orgA)}, 404},
		{"B token, header B, whoami", tokB, req{method: "GET", path: "/v1/whoami", header: inOrg(orgB)}, 200},
		{"B token, get A", tokB, req{method: "GET", path: orgPath(orgA)}, 404},
		{"B token, members of A", tokB, req{method: "GET", path: orgPath(orgA, "members")}, 404},
		{"B token, rename A", tokB, req{method: "PATCH", path: orgPath(orgA), body: map[string]string{"name": "via B"}}, 404},
		{"B token, permissions in A", tokB, req{method: "GET", path: orgPath(orgA, "members", mia.userID, "permissions")}, 404},
		{"A token, header B, whoami", tokA, req{method: "GET", path: "/v1/whoami", header: inOrg(orgB)}, 404},
		{"A token, members of B", tokA, req{method: "GET", path: orgPath(orgB, "members")}, 404},
		{"A token, members of A", tokA, req{method: "GET", path: orgPath(orgA, "members")}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rq.token = tt.token
			before := b.snapshot()
			r := b.expect(tt.rq, tt.status)
			if tt.status == 404 && r.errMsg() == "" {
				t.Errorf("no JSON error: %s", r.Raw)
			}
			if tt.status == 404 {
				b.unchanged(before)
			}
		})
	}
	for tok, org := range map[string]string{tokA: orgA, tokB: orgB} {
		r := b.expect(req{method: "GET", path: "/v1/organizations", token: tok}, 200)
		if l := r.list(); len(l) != 1 || l[0]["id"] != org {
			t.Errorf("token of %s lists %s", org, r.Raw)
		}
		me := b.expect(req{method: "GET", path: "/v1/users/me", token: tok}, 200)
		if o, _ := me.Body["organizations"].([]any); len(o) != 1 || o[0].(map[string]any)["id"] != org {
			t.Errorf("token of %s: me %s", org, me.Raw)
		}
	}
	if got := b.orgName(orgA); got == "via B" {
		t.Error("renamed through another organization's token")
	}
}

func TestTenantRemovedMemberLosesTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	kicked := b.join(owner, org, "kicked@example.com", "member")
	leaver := b.join(owner, org, "leaver@example.com", "viewer")
	kickedTok := b.apiTokenIn(kicked, org, "nodes:read", "nodes:write")
	kickedOwnTok := b.apiToken(kicked, "nodes:read") // in their own organization
	leaverTok := b.apiTokenIn(leaver, org, "members:read")
	for _, tok := range []string{kickedTok, kickedOwnTok, leaverTok} {
		b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 200)
	}

	b.expect(req{method: "DELETE", path: orgPath(org, "members", kicked.userID), token: owner.access}, 204)
	r := b.expect(req{method: "GET", path: "/v1/whoami", token: kickedTok}, 401)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	b.expect(req{method: "GET", path: orgPath(org, "members"), token: kickedTok}, 401)
	if n := b.count("SELECT count(*) FROM api_tokens WHERE organization_id = $1 AND user_id = $2", org, kicked.userID); n != 0 {
		t.Errorf("%d API tokens of the removed member remain", n)
	}
	// Their tokens elsewhere are untouched.
	w := b.expect(req{method: "GET", path: "/v1/whoami", token: kickedOwnTok}, 200)
	if o, _ := w.Body["organization"].(map[string]any); o["id"] != kicked.orgID {
		t.Errorf("whoami %s", w.Raw)
	}

	// Leaving has the same effect.
	b.expect(req{method: "DELETE", path: orgPath(org, "members", leaver.userID), token: leaver.access}, 204)
	b.expect(req{method: "GET", path: "/v1/whoami", token: leaverTok}, 401)
	if n := b.count("SELECT count(*) FROM api_tokens WHERE organization_id = $1 AND user_id = $2", org, leaver.userID); n != 0 {
		t.Errorf("%d API tokens of the member who left remain", n)
	}

	// Rejoining does not bring an old token back.
	tok := b.invite(owner, org, "kicked@example.com", "member").str("token")
	b.expect(req{method: "POST", path: "/v1/invites/" + tok + "/accept", token: kicked.access}, 200)
	b.expect(req{method: "GET", path: "/v1/whoami", token: kickedTok}, 401)
}

func TestTenantNarrowedPermissionsNarrowTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	owner := b.register("owner@example.com")
	org := owner.orgID
	viewer := b.join(owner, org, "viewer@example.com", "viewer")
	member := b.join(owner, org, "member@example.com", "member")

	scopes := func(tok string) []string {
		t.Helper()
		w := b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 200)
		if w.str("auth_method") != "api_token" {
			t.Fatalf("whoami %s", w.Raw)
		}
		return strs(w.Body["scopes"])
	}

	t.Run("removed grant", func(t *testing.T) {
		// Without the grant, the viewer cannot mint a token with nodes:write.
		before := b.snapshot()
		b.expect(req{method: "POST", path: "/v1/api-tokens", token: viewer.access, header: inOrg(org), body: map[string]any{"name": "x", "scopes": []string{"nodes:write"}}}, 403)
		b.unchanged(before)

		b.expect(req{method: "PUT", path: orgPath(org, "members", viewer.userID, "permissions"), token: owner.access, body: map[string]any{"grants": []string{"nodes:write"}}}, 200)
		tok := b.apiTokenIn(viewer, org, "nodes:write", "nodes:read")
		if got := scopes(tok); !slices.Equal(got, []string{"nodes:read", "nodes:write"}) {
			t.Fatalf("scopes with the grant %v", got)
		}
		b.expect(req{method: "DELETE", path: orgPath(org, "members", viewer.userID, "permissions", "nodes:write"), token: owner.access}, 200)
		if got := scopes(tok); !slices.Equal(got, []string{"nodes:read"}) {
			t.Errorf("scopes after the grant was removed %v, want [nodes:read]", got)
		}
	})
	t.Run("demotion", func(t *testing.T) {
		tok := b.apiTokenIn(member, org, "nodes:write", "ssh:sign", "members:read")
		if got := scopes(tok); !slices.Equal(got, []string{"members:read", "nodes:write", "ssh:sign"}) {
			t.Fatalf("scopes as a member %v", got)
		}
		b.expect(req{method: "PUT", path: orgPath(org, "members", member.userID, "role"), token: owner.access, body: map[string]string{"role": "viewer"}}, 200)
		if got := scopes(tok); !slices.Equal(got, []string{"members:read"}) {
			t.Errorf("scopes after demotion %v, want [members:read]", got)
		}
		// The stored token is unchanged; only what it may do today is narrowed.
		if n := b.count("SELECT count(*) FROM api_tokens WHERE organization_id = $1 AND user_id = $2", org, member.userID); n != 1 {
			t.Errorf("member has %d tokens", n)
		}
	})
	t.Run("narrowed token cannot act with a lost permission", func(t *testing.T) {
		// An admin's token with members:admin loses it on demotion and can no
		// longer read invites.
		admin := b.join(owner, org, "admin@acme.test", "admin")
		tok := b.apiTokenIn(admin, org, "members:admin", "members:read")
		b.expect(req{method: "GET", path: orgPath(org, "invites"), token: tok}, 200)
		b.expect(req{method: "PUT", path: orgPath(org, "members", admin.userID, "role"), token: owner.access, body: map[string]string{"role": "member"}}, 200)
		r := b.expect(req{method: "GET", path: orgPath(org, "invites"), token: tok}, 403)
		if !strings.Contains(r.errMsg(), "members:admin") {
			t.Errorf("error %q", r.errMsg())
		}
	})
}
