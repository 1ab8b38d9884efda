package api_test

import (
	"context"
	"strings"
	"testing"
)

func TestAPITokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")

	created := b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access,
		body: map[string]any{"name": "ci", "expires_in": 3600, "scopes": []string{"nodes:read", "planner:read"}}}, 201)
	secret := created.str("token")
	id := created.str("id")
	if !strings.HasPrefix(secret, "shardform_api_") || !strings.HasPrefix(secret, created.str("prefix")) {
		t.Fatalf("created token %s", created.Raw)
	}
	// Only a hash is stored.
	if n := b.count("SELECT count(*) FROM api_tokens WHERE token_hash::text LIKE '%' || $1 || '%'", secret); n != 0 {
		t.Fatal("token secret stored in the database")
	}

	// The list never shows the secret.
	l := b.expect(req{method: "GET", path: "/v1/api-tokens", token: a.access}, 200)
	if strings.Contains(string(l.Raw), secret) || len(l.list()) != 1 || l.list()[0]["token"] != nil {
		t.Fatalf("list shows the secret or is wrong: %s", l.Raw)
	}

	// Both header forms authenticate; whoami tells the scopes.
	for name, h := range map[string]map[string]string{
		"bearer":    {"Authorization": "Bearer " + secret},
		"x-api-key": {"X-API-Key": secret},
	} {
		t.Run(name, func(t *testing.T) {
			w := b.expect(req{method: "GET", path: "/v1/whoami", header: h}, 200)
			scopes, _ := w.Body["scopes"].([]any)
			if w.str("auth_method") != "api_token" || len(scopes) != 2 || scopes[0] != "nodes:read" || scopes[1] != "planner:read" {
				t.Errorf("whoami %s", w.Raw)
			}
			org, _ := w.Body["organization"].(map[string]any)
			if org["id"] != a.orgID {
				t.Errorf("whoami organization %v, want %s", org, a.orgID)
			}
			user, _ := w.Body["user"].(map[string]any)
			if user["is_admin"] != false {
				t.Error("an API token carries platform admin rights")
			}
			b.expect(req{method: "GET", path: "/v1/users/me", header: h}, 200)
		})
	}

	// Its use is recorded (at most once a minute), not every request.
	l = b.expect(req{method: "GET", path: "/v1/api-tokens", token: a.access}, 200)
	if l.list()[0]["last_used_at"] == nil {
		t.Errorf("last_used_at not set after use: %s", l.Raw)
	}
	if _, err := b.pool.Exec(context.Background(), "UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	b.expect(req{method: "GET", path: "/v1/whoami", header: map[string]string{"X-API-Key": secret}}, 200)
	b.expect(req{method: "GET", path: "/v1/whoami", header: map[string]string{"X-API-Key": secret}}, 200)
	if n := b.count("SELECT count(*) FROM api_tokens WHERE id = $1 AND last_used_at > now() - interval '10 seconds'", id); n != 1 {
		t.Error("a use after a minute was not recorded")
	}

	// Deleted: 401 at once.
	b.expect(req{method: "DELETE", path: "/v1/api-tokens/" + id, token: a.access}, 204)
	b.expect(req{method: "GET", path: "/v1/users/me", header: map[string]string{"X-API-Key": secret}}, 401)
	b.expect(req{method: "DELETE", path: "/v1/api-tokens/" + id, token: a.access}, 404)
}

func TestAPITokenExpired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	secret := b.apiToken(a, "nodes:read")
	b.expect(req{method: "GET", path: "/v1/whoami", token: secret}, 200)
	if _, err := b.pool.Exec(t.Context(), "UPDATE api_tokens SET expires_at = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	b.expect(req{method: "GET", path: "/v1/whoami", token: secret}, 401)
}

func TestAPITokenValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	admin := b.bootstrap("admin@example.com")
	viewer := b.register("viewer@example.com")
	// Make viewer a viewer of admin's organization.
	inv := b.expect(req{method: "POST", path: "/v1/organizations/" + admin.orgID + "/members", token: admin.access,
		body: map[string]string{"email": "viewer@example.com", "role": "viewer"}}, 201)
	b.expect(req{method: "POST", path: "/v1/invites/" + inv.str("token") + "/accept", token: viewer.access}, 200)
	inAdminOrg := map[string]string{"X-Organization-ID": admin.orgID}

	tests := []struct {
		name    string
		body    any
		status  int
		wantMsg string
	}{
		{"no name", map[string]any{"scopes": []string{"nodes:read"}}, 400, "name: is required"},
		{"no scopes", map[string]any{"name": "x"}, 400, "scopes: must list at least one permission"},
		{"unknown scope", map[string]any{"name": "x", "scopes": []string{"nodes:read", "root:all"}}, 400, "scopes[1]: unknown permission"},
		{"scope above the creator", map[string]any{"name": "x", "scopes": []string{"nodes:write"}}, 403, "nodes:write"},
		{"expiry too short", map[string]any{"name": "x", "scopes": []string{"nodes:read"}, "expires_in": 5}, 400, "expires_in"},
		{"expiry too long", map[string]any{"name": "x", "scopes": []string{"nodes:read"}, "expires_in": 400 * 24 * 3600}, 400, "expires_in"},
		{"expiry not a number", map[string]any{"name": "x", "scopes": []string{"nodes:read"}, "expires_in": "1h"}, 400, "expires_in: must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/api-tokens", token: viewer.access, header: inAdminOrg, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
	// A viewer may mint a read token in the organization; it is bound to it.
	tok := b.expect(req{method: "POST", path: "/v1/api-tokens", token: viewer.access, header: inAdminOrg,
		body: map[string]any{"name": "read", "scopes": []string{"nodes:read"}}}, 201)
	if tok.str("organization_id") != admin.orgID {
		t.Errorf("token organization %s, want %s", tok.str("organization_id"), admin.orgID)
	}
}

func TestAPITokensCannotEscalate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	// Even a token carrying every scope cannot manage tokens, passwords or MFA.
	all := b.expect(req{method: "GET", path: "/v1/permissions", token: a.access}, 200)
	var scopes []string
	for _, p := range all.list() {
		scopes = append(scopes, p["key"].(string))
	}
	tok := b.apiToken(a, scopes...)
	tests := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/api-tokens", map[string]any{"name": "x", "scopes": []string{"nodes:read"}}},
		{"GET", "/v1/api-tokens", nil},
		{"DELETE", "/v1/api-tokens/00000000-0000-0000-0000-000000000001", nil},
		{"POST", "/v1/users/me/password", map[string]string{"current_password": testPassword, "new_password": "another password"}},
		{"POST", "/v1/auth/mfa/enroll", nil},
		{"GET", "/v1/auth/mfa/status", nil},
		{"POST", "/v1/auth/mfa/disable", map[string]string{"code": "123456"}},
		{"POST", "/v1/organizations/" + a.orgID + "/members", map[string]string{"email": "x@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: tt.method, path: tt.path, token: tok, body: tt.body}, 403)
			if !strings.Contains(r.errMsg(), "API tokens cannot") {
				t.Errorf("error %q", r.errMsg())
			}
			b.unchanged(before)
		})
	}
	// Nor does a token act as a platform admin.
	b.expect(req{method: "GET", path: "/v1/users", token: tok}, 403)
	// But a token may revoke itself (shardform logout): 401 at once.
	self := b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 200).str("api_token_id")
	b.expect(req{method: "DELETE", path: "/v1/api-tokens/" + self, token: tok}, 204)
	b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 401)
}

func TestAdminUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	admin := b.bootstrap("admin@example.com")
	user := b.register("user@example.com")

	b.expect(req{method: "GET", path: "/v1/users", token: user.access}, 403)
	b.expect(req{method: "POST", path: "/v1/users", token: user.access, body: map[string]any{"email": "x@example.com", "password": testPassword}}, 403)
	b.expect(req{method: "GET", path: "/v1/users/" + admin.userID, token: user.access}, 403)
	b.expect(req{method: "DELETE", path: "/v1/users/" + admin.userID, token: user.access}, 403)

	created := b.expect(req{method: "POST", path: "/v1/users", token: admin.access, body: map[string]any{"email": "new@example.com", "password": testPassword}}, 201)
	newID := created.Body["user"].(map[string]any)["id"].(string)
	l := b.expect(req{method: "GET", path: "/v1/users?limit=2", token: admin.access}, 200)
	if meta := l.Body["meta"].(map[string]any); meta["total"] != float64(3) || meta["limit"] != float64(2) || len(l.list()) != 2 {
		t.Errorf("users list %s", l.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/users/" + newID, token: admin.access}, 200)
	b.expect(req{method: "GET", path: "/v1/users/not-a-uuid", token: admin.access}, 400)
	b.expect(req{method: "DELETE", path: "/v1/users/" + admin.userID, token: admin.access}, 409)
	b.expect(req{method: "DELETE", path: "/v1/users/" + newID, token: admin.access}, 204)
	b.expect(req{method: "GET", path: "/v1/users/" + newID, token: admin.access}, 404)
	b.login("user@example.com", testPassword)
	b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": "new@example.com", "password": testPassword}}, 401)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{rateLimit: 3})
	a := b.bootstrap("admin@example.com")
	tok := b.apiToken(a, "nodes:read")
	for i := range 3 {
		r := b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 200)
		if r.Header.Get("X-RateLimit-Limit") != "3" || r.Header.Get("X-RateLimit-Remaining") != string(rune('2'-i)) || r.Header.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d headers %v", i, r.Header)
		}
	}
	r := b.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 429)
	if r.Header.Get("Retry-After") == "" || r.Header.Get("X-RateLimit-Remaining") != "0" || r.errMsg() == "" {
		t.Errorf("429 answer %v %s", r.Header, r.Raw)
	}
	// The limit is per credential: a second token has its own budget.
	other := b.apiToken(a, "nodes:read")
	b.expect(req{method: "GET", path: "/v1/whoami", token: other}, 200)
	// Counters live in Postgres, so a second API process sharing the database
	// sees the same count.
	b2 := &bundle{t: t, srv: setupServerOn(t, b.pool, 3), pool: b.pool, contract: &contract{}}
	b2.expect(req{method: "GET", path: "/v1/whoami", token: tok}, 429)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []string{"/health", "/health/live", "/health/ready", "/ready"} {
		r := b.expect(req{method: "GET", path: p}, 200)
		if r.str("status") != "ok" {
			t.Errorf("%s: %s", p, r.Raw)
		}
	}
	d := b.expect(req{method: "GET", path: "/health/detailed"}, 200)
	db, _ := d.Body["database"].(map[string]any)
	if d.str("version") != "test" || db["status"] != "ok" || db["latency_ms"] == nil {
		t.Errorf("detailed %s", d.Raw)
	}
	if q, _ := d.Body["queue"].(map[string]any); q["jobs_by_state"] == nil {
		t.Errorf("detailed has no queue depth: %s", d.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/nope"}, 404)

	// With the database gone, readiness says so.
	b.pool.Close()
	r := b.expect(req{method: "GET", path: "/health/ready"}, 503)
	if !strings.Contains(r.str("error"), "database") {
		t.Errorf("ready when down: %s", r.Raw)
	}
	b.expect(req{method: "GET", path: "/health/live"}, 200)
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	tok := b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access, body: map[string]any{"name": "x", "scopes": []string{"nodes:read"}}}, 201)
	// A rejected call is not audited.
	b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access, body: map[string]any{"name": ""}}, 400)
	l := b.expect(req{method: "GET", path: "/v1/admin/audit-logs", token: a.access}, 200)
	entries := l.list()
	if len(entries) != 2 {
		t.Fatalf("audit entries %s", l.Raw)
	}
	newest := entries[0]
	if newest["action"] != "POST /v1/api-tokens" || newest["target"] != tok.str("id") || newest["user_id"] != a.userID ||
		newest["organization_id"] != a.orgID || newest["status"] != float64(201) || newest["request_id"] == "" {
		t.Errorf("newest entry %v", newest)
	}
	if entries[1]["action"] != "POST /v1/auth/bootstrap" {
		t.Errorf("oldest entry %v", entries[1])
	}
	// A member without audit:read is refused; another organization sees none of it.
	other := b.register("other@example.com")
	ol := b.expect(req{method: "GET", path: "/v1/admin/audit-logs", token: other.access}, 200)
	for _, e := range ol.list() {
		if e["organization_id"] == a.orgID {
			t.Fatalf("other organization sees %v", e)
		}
	}
	read := b.apiToken(a, "nodes:read")
	b.expect(req{method: "GET", path: "/v1/admin/audit-logs", token: read}, 403)
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.expect(req{method: "GET", path: "/health", header: map[string]string{"X-Request-ID": "abc-123"}}, 200)
	if r.Header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("request id %q", r.Header.Get("X-Request-ID"))
	}
	r = b.expect(req{method: "GET", path: "/health", header: map[string]string{"X-Request-ID": "bad id\twith spaces"}}, 200)
	if id := r.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Errorf("unsafe request id echoed: %q", id)
	}
}
