package api_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shardform/shardform/credentials"
	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
)

const (
	hetznerToken    = "hz-live-token-abcdefgh-9876"
	cloudflareToken = "cf-token-0123456789-wxyz"
)

// credentialSetup serves credentials with verifiers calling local fakes of
// the Hetzner and Cloudflare APIs through hcloud-go and cloudflare-go.
func credentialSetup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	cf := cffake.New(t)
	cf.AddToken(cloudflareToken)
	o.verifiers = map[string]credentials.Verifier{
		"hetzner":    providers.HetznerVerifier{Endpoint: hcloudfake.New(t, hcloudfake.Options{Token: hetznerToken}).URL},
		"cloudflare": providers.CloudflareVerifier{BaseURL: cf.URL},
	}
	return setup(t, o)
}

func (b *bundle) createCredential(token, name, provider string, secret map[string]string) response {
	b.t.Helper()
	return b.expect(req{method: "POST", path: "/v1/credentials", token: token,
		body: map[string]any{"name": name, "provider": provider, "secret": secret}}, 201)
}

// noSecretIn fails if any secret value appears in raw.
func noSecretIn(t *testing.T, where string, raw []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s holds a secret: %s", where, raw)
		}
	}
}

func TestCredentialsLifecycle(t *testing.T) {
	t.Parallel()
	b := credentialSetup(t, setupOpts{})
	a := b.bootstrap("ops@example.com")

	first := b.createCredential(a.access, "hetzner main", "hetzner", map[string]string{"token": hetznerToken})
	noSecretIn(t, "create answer", first.Raw, hetznerToken)
	if first.str("hint") != "…9876" || first.Body["is_default"] != true || first.str("provider") != "hetzner" {
		t.Errorf("first credential %s", first.Raw)
	}
	second := b.createCredential(a.access, "hetzner spare", "hetzner", map[string]string{"token": "hz-spare-token-zzzzzzzz-1111"})
	if second.Body["is_default"] != false {
		t.Errorf("second credential of a provider became default: %s", second.Raw)
	}
	aws := b.createCredential(a.access, "aws", "aws", map[string]string{"access_key_id": "AKIAEXAMPLE000001", "secret_access_key": "aws-secret-key-material-42"})
	if aws.Body["is_default"] != true || aws.str("hint") != "…0001" {
		t.Errorf("aws credential %s", aws.Raw)
	}

	// At rest: sealed, no plaintext in the row.
	rows, err := b.pool.Query(context.Background(), "SELECT secret FROM credentials")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		noSecretIn(t, "credentials.secret", sealed, hetznerToken, "aws-secret-key-material-42", "AKIAEXAMPLE000001")
	}
	rows.Close()

	list := b.expect(req{method: "GET", path: "/v1/credentials", token: a.access}, 200)
	noSecretIn(t, "list", list.Raw, hetznerToken, "aws-secret-key-material-42")
	if got := len(list.list()); got != 3 {
		t.Errorf("list has %d credentials, want 3", got)
	}
	if got := len(b.expect(req{method: "GET", path: "/v1/credentials?provider=hetzner", token: a.access}, 200).list()); got != 2 {
		t.Errorf("provider filter: %d hetzner credentials, want 2", got)
	}

	id1, id2 := first.str("id"), second.str("id")
	// One default per provider: making the spare default clears the first.
	b.expect(req{method: "POST", path: "/v1/credentials/" + id2 + "/default", token: a.access}, 200)
	if g := b.expect(req{method: "GET", path: "/v1/credentials/" + id1, token: a.access}, 200); g.Body["is_default"] != false {
		t.Errorf("old default still default: %s", g.Raw)
	}
	if n := b.count("SELECT count(*) FROM credentials WHERE is_default AND provider = 'hetzner'"); n != 1 {
		t.Errorf("%d default hetzner credentials", n)
	}

	// Update: a rename keeps the secret; a new secret changes the hint.
	up := b.expect(req{method: "PUT", path: "/v1/credentials/" + id1, token: a.access, body: map[string]any{"name": "hetzner old"}}, 200)
	if up.str("name") != "hetzner old" || up.str("hint") != "…9876" {
		t.Errorf("rename: %s", up.Raw)
	}
	up = b.expect(req{method: "PUT", path: "/v1/credentials/" + id1, token: a.access, body: map[string]any{"secret": map[string]string{"token": "hz-rotated-token-00000-5555"}}}, 200)
	if up.str("hint") != "…5555" {
		t.Errorf("new secret: %s", up.Raw)
	}
	b.expect(req{method: "PUT", path: "/v1/credentials/" + id1, token: a.access, body: map[string]any{"provider": "aws"}}, 400)

	b.expect(req{method: "DELETE", path: "/v1/credentials/" + id1, token: a.access}, 204)
	b.expect(req{method: "GET", path: "/v1/credentials/" + id1, token: a.access}, 404)
	b.expect(req{method: "DELETE", path: "/v1/credentials/" + id1, token: a.access}, 404)

	audit := b.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: a.access}, 200)
	noSecretIn(t, "audit log", audit.Raw, hetznerToken, "hz-rotated-token-00000-5555", "aws-secret-key-material-42")
}

func TestCredentialsValidation(t *testing.T) {
	t.Parallel()
	b := credentialSetup(t, setupOpts{})
	a := b.bootstrap("ops@example.com")
	b.createCredential(a.access, "taken", "hetzner", map[string]string{"token": hetznerToken})
	tests := []struct {
		name   string
		body   any
		status int
		field  string // the error must name it
	}{
		{"unknown provider", map[string]any{"name": "x", "provider": "gcp", "secret": map[string]string{"token": "t"}}, 400, "provider"},
		{"no secret", map[string]any{"name": "x", "provider": "hetzner"}, 400, "secret"},
		{"missing field", map[string]any{"name": "x", "provider": "aws", "secret": map[string]string{"access_key_id": "AKIA"}}, 400, "secret.secret_access_key"},
		{"foreign field", map[string]any{"name": "x", "provider": "hetzner", "secret": map[string]string{"token": "t", "password": "p"}}, 400, "secret.password"},
		{"blank token", map[string]any{"name": "x", "provider": "hetzner", "secret": map[string]string{"token": "  "}}, 400, "secret.token"},
		{"two-line token", map[string]any{"name": "x", "provider": "cloudflare", "secret": map[string]string{"api_token": "a\nb"}}, 400, "secret.api_token"},
		{"no name", map[string]any{"provider": "hetzner", "secret": map[string]string{"token": "t"}}, 400, "name"},
		{"bad name", map[string]any{"name": "<script>", "provider": "hetzner", "secret": map[string]string{"token": "t"}}, 400, "name"},
		{"unknown body field", map[string]any{"name": "x", "provider": "hetzner", "token": "t"}, 400, "token"},
		{"duplicate name", map[string]any{"name": "taken", "provider": "hetzner", "secret": map[string]string{"token": "t"}}, 409, "taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/credentials", token: a.access, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.field) {
				t.Errorf("error %q does not name %s", r.errMsg(), tt.field)
			}
			b.unchanged(before)
		})
	}
}

func TestCredentialsVerify(t *testing.T) {
	t.Parallel()
	b := credentialSetup(t, setupOpts{})
	a := b.bootstrap("ops@example.com")
	tests := []struct {
		provider string
		secret   map[string]string
		ok       bool
		errPart  string
	}{
		{"hetzner", map[string]string{"token": hetznerToken}, true, ""},
		{"hetzner", map[string]string{"token": "hz-revoked-token-000000-0000"}, false, "unable to authenticate"},
		{"cloudflare", map[string]string{"api_token": cloudflareToken}, true, ""},
		{"cloudflare", map[string]string{"api_token": "cf-unknown-token-0000000"}, false, "Invalid API Token"},
	}
	for i, tt := range tests {
		c := b.createCredential(a.access, tt.provider+string(rune('a'+i)), tt.provider, tt.secret)
		r := b.expect(req{method: "POST", path: "/v1/credentials/" + c.str("id") + "/verify", token: a.access}, 200)
		cred := r.Body["credential"].(map[string]any)
		if r.Body["ok"] != tt.ok || !strings.Contains(r.str("error"), tt.errPart) || cred["verified_at"] == nil || cred["verify_error"] != r.str("error") {
			t.Errorf("verify %s %v: %s", tt.provider, tt.secret, r.Raw)
		}
	}
}

func TestCredentialsPermissionsAndIsolation(t *testing.T) {
	t.Parallel()
	b := credentialSetup(t, setupOpts{})
	owner := b.bootstrap("owner@example.com")
	c := b.createCredential(owner.access, "main", "hetzner", map[string]string{"token": hetznerToken})
	id := c.str("id")
	member := b.join(owner, owner.orgID, "member@example.com", "member")
	reader := b.apiToken(owner, "credentials:read")
	outsider := b.register("outsider@example.com")

	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"member lists", req{method: "GET", path: "/v1/credentials", token: member.access, header: inOrg(owner.orgID)}, 200},
		{"member cannot create", req{method: "POST", path: "/v1/credentials", token: member.access, header: inOrg(owner.orgID),
			body: map[string]any{"name": "m", "provider": "hetzner", "secret": map[string]string{"token": "t"}}}, 403},
		{"member cannot delete", req{method: "DELETE", path: "/v1/credentials/" + id, token: member.access, header: inOrg(owner.orgID)}, 403},
		{"read-only token reads", req{method: "GET", path: "/v1/credentials/" + id, token: reader}, 200},
		{"read-only token cannot verify", req{method: "POST", path: "/v1/credentials/" + id + "/verify", token: reader}, 403},
		{"read-only token cannot set default", req{method: "POST", path: "/v1/credentials/" + id + "/default", token: reader}, 403},
		{"outsider cannot see", req{method: "GET", path: "/v1/credentials/" + id, token: outsider.access}, 404},
		{"outsider cannot update", req{method: "PUT", path: "/v1/credentials/" + id, token: outsider.access, body: map[string]any{"name": "mine"}}, 404},
		{"outsider cannot delete", req{method: "DELETE", path: "/v1/credentials/" + id, token: outsider.access}, 404},
		{"outsider cannot verify", req{method: "POST", path: "/v1/credentials/" + id + "/verify", token: outsider.access}, 404},
		{"outsider's header is refused", req{method: "GET", path: "/v1/credentials", token: outsider.access, header: inOrg(owner.orgID)}, 404},
		{"no credentials", req{method: "GET", path: "/v1/credentials"}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.expect(tt.r, tt.status)
		})
	}
	if got := b.expect(req{method: "GET", path: "/v1/credentials", token: outsider.access}, 200).list(); len(got) != 0 {
		t.Errorf("outsider lists %v", got)
	}
	if r := b.expect(req{method: "GET", path: "/v1/credentials/" + id, token: owner.access}, 200); r.str("name") != "main" {
		t.Errorf("credential changed: %s", r.Raw)
	}
}

// TestProvisionCredentials: drivers that need a credential take the named
// one or the provider's default; a credential a live request needs cannot
// be deleted.
func TestProvisionCredentials(t *testing.T) {
	t.Parallel()
	catalog, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	hetzner := providers.NewHetzner(catalog, catalog.ReadAt)
	b := credentialSetup(t, setupOpts{provisioning: true, drivers: []providers.Driver{hetzner}})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	region := hetzner.Regions()[0].Name
	itype := providers.InstanceTypesIn(hetzner, region)[0].Name // a type sold in that region
	body := func(name string, extra map[string]any) map[string]any {
		m := map[string]any{"provider": "hetzner", "region": region, "instance_type": itype, "name": name}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	r := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body("no-cred", nil)}, 400)
	if !strings.Contains(r.errMsg(), "credential_id") || !strings.Contains(r.errMsg(), "no default hetzner credential") {
		t.Errorf("without any credential: %q", r.errMsg())
	}
	cf := b.createCredential(a.access, "dns", "cloudflare", map[string]string{"api_token": cloudflareToken})
	hz := b.createCredential(a.access, "hz", "hetzner", map[string]string{"token": hetznerToken})
	foreign := b.createCredential(other.access, "theirs", "hetzner", map[string]string{"token": hetznerToken})

	before := b.snapshot()
	r = b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body("wrong-kind", map[string]any{"credential_id": cf.str("id")})}, 400)
	if !strings.Contains(r.errMsg(), "credential_id") || !strings.Contains(r.errMsg(), "cloudflare") {
		t.Errorf("cloudflare credential for hetzner: %q", r.errMsg())
	}
	b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body("foreign", map[string]any{"credential_id": foreign.str("id")})}, 404)
	r = b.expect(req{method: "POST", path: "/v1/provision", token: a.access,
		body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "local-1", "credential_id": hz.str("id")}}, 400)
	if !strings.Contains(r.errMsg(), "credential_id") {
		t.Errorf("credential for local: %q", r.errMsg())
	}
	b.unchanged(before)

	byDefault := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body("web-1", nil)}, 201)
	if byDefault.str("credential_id") != hz.str("id") {
		t.Errorf("default credential not taken: %s", byDefault.Raw)
	}
	named := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body("web-2", map[string]any{"credential_id": hz.str("id")})}, 201)
	if named.str("credential_id") != hz.str("id") {
		t.Errorf("named credential: %s", named.Raw)
	}

	r = b.expect(req{method: "DELETE", path: "/v1/credentials/" + hz.str("id"), token: a.access}, 409)
	if !strings.Contains(r.errMsg(), "web-1") {
		t.Errorf("delete of a credential in use: %q", r.errMsg())
	}
	// Once its requests are destroyed the credential may go. (A pending
	// request's destroy needs no Terraform resources; it still runs the
	// driver's configuration, which needs the hcloud provider this machine
	// lacks, so mark them destroyed directly.)
	if _, err := b.pool.Exec(context.Background(), "UPDATE provision_requests SET status = 'destroyed'"); err != nil {
		t.Fatal(err)
	}
	b.expect(req{method: "DELETE", path: "/v1/credentials/" + hz.str("id"), token: a.access}, 204)
	if got := b.expect(req{method: "GET", path: "/v1/provision/" + named.str("id"), token: a.access}, 200); got.Body["credential_id"] != nil {
		t.Errorf("destroyed request still names the deleted credential: %s", got.Raw)
	}
}
