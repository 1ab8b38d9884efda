package api_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/shardform/shardform/domain"
)

// TestSSHScopes: every SSH endpoint checks the API token's scopes first,
// then ownership. For every route under /v1/ssh (read from Fiber's route
// table) and every permission of the catalog, a token of the organization's
// owner holding that one scope is let through only when the scope is one the
// endpoint accepts, and is answered 403 otherwise, even for the token user's
// own certificates (a nodes:read token could read and revoke them); a
// refused request changes nothing.
func TestSSHScopes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	key := newUserKey(t, t.TempDir(), "id").public
	hostKey := newUserKey(t, t.TempDir(), "host").public
	node := b.addNode(a.orgID, "web-1", "192.0.2.10", "")
	sign := map[string]any{"public_key": key, "principals": []string{"root"}, "validity_hours": 1}
	// cert signs a certificate of the owner (the tokens' user).
	cert := func() string {
		return b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: sign}, 200).str("id")
	}
	// retirable returns a user or host CA key that may be retired: the
	// signing key, once a rotation has replaced it.
	retirable := func(kind string) string {
		keys := b.expect(req{method: "GET", path: "/v1/ssh/" + kind + "/keys", token: a.access}, 200).list()
		b.expect(req{method: "POST", path: "/v1/ssh/" + kind + "/keys/rotate", token: a.access}, 201)
		for _, k := range keys {
			if k["signing"] == true {
				return k["id"].(string)
			}
		}
		t.Fatalf("no signing %s key in %v", kind, keys)
		return ""
	}
	pol := b.expect(req{method: "GET", path: "/v1/ssh/policy", token: a.access}, 200).Body

	const public = "public"
	sshSign, sshAdmin := string(domain.PermSSHSign), string(domain.PermSSHAdmin)
	type endpoint struct {
		scopes []string // the scopes let through; public: no credential needed
		status int      // the answer when let through
		body   any
		// path returns the request path with a fresh object for each
		// request let through (nil: the route's path as it is).
		path func() string
	}
	orgQuery := "?organization_id=" + a.orgID
	endpoints := map[string]endpoint{
		"GET /v1/ssh/ca-public-key": {scopes: []string{public}, status: 200, path: func() string { return "/v1/ssh/ca-public-key" + orgQuery }},
		"GET /v1/ssh/known-hosts":   {scopes: []string{public}, status: 200, path: func() string { return "/v1/ssh/known-hosts" + orgQuery }},
		"GET /v1/ssh/krl":           {scopes: []string{public}, status: 200, path: func() string { return "/v1/ssh/krl" + orgQuery }},
		"GET /v1/ssh/host-krl":      {scopes: []string{public}, status: 200, path: func() string { return "/v1/ssh/host-krl" + orgQuery }},
		"POST /v1/ssh/certificate":  {scopes: []string{sshSign}, status: 200, body: sign},
		"GET /v1/ssh/certificates":  {scopes: []string{sshSign, sshAdmin}, status: 200},
		"POST /v1/ssh/certificates/search": {scopes: []string{sshSign, sshAdmin}, status: 200,
			body: map[string]any{"search": map[string]any{"key_id": []string{"ops"}}, "sortBy": "serial"}},
		"GET /v1/ssh/certificates/:id": {scopes: []string{sshSign, sshAdmin}, status: 200,
			path: func() string { return "/v1/ssh/certificates/" + cert() }},
		"POST /v1/ssh/certificates/:id/revoke": {scopes: []string{sshSign, sshAdmin}, status: 200,
			path: func() string { return "/v1/ssh/certificates/" + cert() + "/revoke" }},
		"POST /v1/ssh/host-certificate": {scopes: []string{sshAdmin}, status: 200,
			body: map[string]any{"public_key": hostKey, "node_id": node}},
		"GET /v1/ssh/host-certificates": {scopes: []string{sshAdmin}, status: 200},
		"GET /v1/ssh/policy":            {scopes: []string{sshAdmin}, status: 200},
		"PUT /v1/ssh/policy":            {scopes: []string{sshAdmin}, status: 200, body: pol},
		"GET /v1/ssh/ca/keys":           {scopes: []string{sshAdmin}, status: 200},
		"POST /v1/ssh/ca/keys":          {scopes: []string{sshAdmin}, status: 201},
		"POST /v1/ssh/ca/keys/rotate":   {scopes: []string{sshAdmin}, status: 201},
		"POST /v1/ssh/ca/keys/:id/retire": {scopes: []string{sshAdmin}, status: 200,
			path: func() string { return "/v1/ssh/ca/keys/" + retirable("ca") + "/retire" }},
		"GET /v1/ssh/host-ca/keys":         {scopes: []string{sshAdmin}, status: 200},
		"POST /v1/ssh/host-ca/keys/rotate": {scopes: []string{sshAdmin}, status: 201},
		"POST /v1/ssh/host-ca/keys/:id/retire": {scopes: []string{sshAdmin}, status: 200,
			path: func() string { return "/v1/ssh/host-ca/keys/" + retirable("host-ca") + "/retire" }},
	}

	// Every SSH route is in the table, and every entry is a route.
	routed := map[string]bool{}
	for _, r := range b.srv.App().GetRoutes(true) {
		if strings.HasPrefix(r.Path, "/v1/ssh/") && r.Method != "HEAD" {
			routed[r.Method+" "+r.Path] = true
			if _, ok := endpoints[r.Method+" "+r.Path]; !ok {
				t.Errorf("route %s %s is not in the scope table", r.Method, r.Path)
			}
		}
	}
	for k := range endpoints {
		if !routed[k] {
			t.Errorf("%s is in the scope table but not routed", k)
		}
	}

	// The objects refused requests name: the owner's own certificate, a
	// retirable CA key of each kind.
	own := cert()
	oldCA, oldHostCA := retirable("ca"), retirable("host-ca")
	refusedPath := map[string]string{
		"GET /v1/ssh/certificates/:id":         "/v1/ssh/certificates/" + own,
		"POST /v1/ssh/certificates/:id/revoke": "/v1/ssh/certificates/" + own + "/revoke",
		"POST /v1/ssh/ca/keys/:id/retire":      "/v1/ssh/ca/keys/" + oldCA + "/retire",
		"POST /v1/ssh/host-ca/keys/:id/retire": "/v1/ssh/host-ca/keys/" + oldHostCA + "/retire",
	}
	tokens := map[string]string{}
	for _, info := range domain.Catalog() {
		tokens[string(info.Key)] = b.apiToken(a, string(info.Key))
	}
	counts := func() [4]int {
		return [4]int{
			b.count("SELECT count(*) FROM ssh_certificates"), b.count("SELECT count(*) FROM ssh_certificates WHERE revoked_at IS NOT NULL"),
			b.count("SELECT count(*) FROM ssh_ca_keys WHERE status = 'active'") + 100*b.count("SELECT count(*) FROM ssh_ca_keys"),
			b.count("SELECT count(*) FROM ssh_host_ca_keys WHERE status = 'active'") + 100*b.count("SELECT count(*) FROM ssh_host_ca_keys") + 10000*b.count("SELECT count(*) FROM ssh_host_certificates"),
		}
	}

	for route, ep := range endpoints {
		method, routePath, _ := strings.Cut(route, " ")
		for _, info := range domain.Catalog() {
			scope := string(info.Key)
			t.Run(route+"/"+scope, func(t *testing.T) {
				passes := slices.Contains(ep.scopes, public) || slices.Contains(ep.scopes, scope)
				path := routePath
				switch {
				case passes && ep.path != nil:
					path = ep.path()
				case refusedPath[route] != "":
					path = refusedPath[route]
				case ep.path != nil:
					path = ep.path()
				}
				before := counts()
				r := b.do(req{method: method, path: path, token: tokens[scope], body: ep.body})
				if passes {
					if r.Status != ep.status {
						t.Errorf("%s %s with a %s token: %d %q, want %d", method, path, scope, r.Status, r.errMsg(), ep.status)
					}
					return
				}
				if r.Status != 403 || !strings.Contains(r.errMsg(), "permission") {
					t.Errorf("%s %s with a %s token: %d %q, want 403 naming the missing permission", method, path, scope, r.Status, r.errMsg())
				}
				if after := counts(); after != before {
					t.Errorf("a refused request changed the CA: %v to %v", before, after)
				}
			})
		}
	}
	// The owner's certificate is still active.
	if got := b.expect(req{method: "GET", path: "/v1/ssh/certificates/" + own, token: a.access}, 200).str("state"); got != "active" {
		t.Errorf("the certificate refused requests named is %s", got)
	}
}
