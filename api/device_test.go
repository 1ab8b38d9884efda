package api_test

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// offsetClock is the real time moved forward by what a test advances it.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

var (
	userCodeShape   = regexp.MustCompile(`^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$`)
	deviceCodeShape = regexp.MustCompile(`^[A-Za-z0-9_-]{43,}$`)
)

// startDevice begins a device login and checks the answer's shape.
func (b *bundle) startDevice(clientName string, scopes ...string) response {
	b.t.Helper()
	r := b.expect(req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": clientName, "scopes": scopes}}, 200)
	if !deviceCodeShape.MatchString(r.str("device_code")) || !userCodeShape.MatchString(r.str("user_code")) {
		b.t.Fatalf("device codes: %s", r.Raw)
	}
	return r
}

// poll polls a device code once and answers the status and the error code.
func (b *bundle) poll(deviceCode string) response {
	b.t.Helper()
	return b.do(req{method: "POST", path: "/v1/auth/device/token", body: map[string]string{"device_code": deviceCode}})
}

// expectGrantError fails unless the poll answers 400 with the RFC 8628 code.
func (b *bundle) expectGrantError(deviceCode, code string) {
	b.t.Helper()
	r := b.poll(deviceCode)
	if r.Status != 400 || r.errMsg() != code || len(r.Body) != 1 {
		b.t.Fatalf("poll: %d %s, want 400 {\"error\": %q}", r.Status, r.Raw, code)
	}
}

func approveBody(userCode, orgID string) map[string]string {
	return map[string]string{"user_code": userCode, "organization_id": orgID}
}

func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	// A second organization of Alice's: the token must land in the one she approves for.
	second := b.expect(req{method: "POST", path: "/v1/organizations", token: alice.access, body: map[string]string{"name": "Second"}}, 201).str("id")

	d := b.startDevice("shardform on host-1", "provision:read", "nodes:read", "provision:read")
	deviceCode, userCode := d.str("device_code"), d.str("user_code")
	if d.str("verification_uri") != "http://example.com/device" ||
		d.str("verification_uri_complete") != "http://example.com/device?code="+userCode ||
		d.Body["expires_in"] != float64(600) || d.Body["interval"] != float64(5) || len(d.Body) != 6 {
		t.Fatalf("device authorization %s", d.Raw)
	}
	// Only the device code's hash is stored.
	sum := sha256.Sum256([]byte(deviceCode))
	if n := b.count("SELECT count(*) FROM device_authorizations WHERE device_code_hash = $1", sum[:]); n != 1 {
		t.Fatalf("%d rows with the device code's hash", n)
	}
	if n := b.count("SELECT count(*) FROM device_authorizations d WHERE d::text LIKE '%' || $1 || '%'", deviceCode); n != 0 {
		t.Fatal("the device code is stored in plain text")
	}

	b.expectGrantError(deviceCode, "authorization_pending")

	// The approval page's view, by the code as a person may type it.
	typed := strings.ToLower(strings.ReplaceAll(userCode, "-", ""))
	g := b.expect(req{method: "GET", path: "/v1/auth/device?user_code=" + typed, token: alice.access}, 200)
	if g.str("client_name") != "shardform on host-1" || !slices.Equal(strs(g.Body["scopes"]), []string{"nodes:read", "provision:read"}) || g.str("expires_at") == "" || len(g.Body) != 3 {
		t.Fatalf("GET device %s", g.Raw)
	}

	ap := b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody(" "+strings.ToLower(userCode)+" ", second)}, 200)
	if ap.str("client_name") != "shardform on host-1" || ap.str("organization_id") != second || !slices.Equal(strs(ap.Body["scopes"]), []string{"nodes:read", "provision:read"}) || len(ap.Body) != 3 {
		t.Fatalf("approve %s", ap.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/auth/device/approve' AND user_id = $1 AND organization_id = $2", alice.userID, second); n != 1 {
		t.Errorf("%d audit entries of the approval", n)
	}
	// Approving twice is a conflict.
	b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody(userCode, second)}, 409)

	tok := b.expect(req{method: "POST", path: "/v1/auth/device/token", body: map[string]string{"device_code": deviceCode}}, 200)
	secret := tok.str("token")
	if !strings.HasPrefix(secret, "shardform_api_") || tok.str("name") != "shardform on host-1" || tok.str("organization_id") != second ||
		!slices.Equal(strs(tok.Body["scopes"]), []string{"nodes:read", "provision:read"}) {
		t.Fatalf("delivered token %s", tok.Raw)
	}
	// Exactly the body POST /v1/api-tokens answers.
	made := b.expect(req{method: "POST", path: "/v1/api-tokens", token: alice.access, body: map[string]any{"name": "x", "scopes": []string{"nodes:read"}}}, 201)
	if got, want := slices.Sorted(maps.Keys(tok.Body)), slices.Sorted(maps.Keys(made.Body)); !slices.Equal(got, want) {
		t.Errorf("token fields %v, POST /v1/api-tokens answers %v", got, want)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/auth/device/token' AND user_id = $1 AND organization_id = $2 AND target = $3", alice.userID, second, tok.str("id")); n != 1 {
		t.Errorf("%d audit entries of the delivery", n)
	}

	// The token works, in the approved organization, with the requested scopes.
	w := b.expect(req{method: "GET", path: "/v1/whoami", token: secret}, 200)
	org, _ := w.Body["organization"].(map[string]any)
	user, _ := w.Body["user"].(map[string]any)
	if w.str("auth_method") != "api_token" || org["id"] != second || user["id"] != alice.userID ||
		!slices.Equal(strs(w.Body["scopes"]), []string{"nodes:read", "provision:read"}) {
		t.Fatalf("whoami with the device's token %s", w.Raw)
	}
	// Never delivered twice, and no secret at rest.
	b.expectGrantError(deviceCode, "invalid_grant")
	if n := b.count("SELECT count(*) FROM device_authorizations d WHERE d::text LIKE '%' || $1 || '%'", secret); n != 0 {
		t.Fatal("the token's secret is stored in the device authorization")
	}
	if n := b.count("SELECT count(*) FROM device_authorizations WHERE api_token_id = $1 AND delivered_at IS NOT NULL", tok.str("id")); n != 1 {
		t.Error("the delivery is not recorded")
	}
	// The user code is spent too.
	b.expect(req{method: "GET", path: "/v1/auth/device?user_code=" + userCode, token: alice.access}, 409)
}

func TestDevicePublicURL(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{publicURL: "https://shardform.example.test"})
	d := b.startDevice("ci", "nodes:read")
	if d.str("verification_uri") != "https://shardform.example.test/device" ||
		d.str("verification_uri_complete") != "https://shardform.example.test/device?code="+d.str("user_code") {
		t.Fatalf("verification URIs under SHARDFORM_PUBLIC_URL: %s", d.Raw)
	}
}

func TestDeviceDeliveredOnceConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	d := b.startDevice("laptop", "nodes:read")
	b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody(d.str("user_code"), alice.orgID)}, 200)

	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	codes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := b.try(req{method: "POST", path: "/v1/auth/device/token", body: map[string]string{"device_code": d.str("device_code")}})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i], codes[i] = r.Status, r.errMsg()
		}()
	}
	wg.Wait()
	delivered := 0
	for i := range n {
		switch {
		case statuses[i] == 200:
			delivered++
		case statuses[i] != 400 || codes[i] != "invalid_grant":
			t.Errorf("poll %d: %d %q", i, statuses[i], codes[i])
		}
	}
	if delivered != 1 {
		t.Fatalf("the token was delivered %d times", delivered)
	}
	if c := b.count("SELECT count(*) FROM api_tokens WHERE name = 'laptop'"); c != 1 {
		t.Fatalf("%d tokens minted", c)
	}
}

func TestDeviceSlowDown(t *testing.T) {
	t.Parallel()
	clock := &offsetClock{}
	b := setup(t, setupOpts{now: clock.now})
	d := b.startDevice("ci", "nodes:read")
	code := d.str("device_code")
	interval := func() int {
		return b.count("SELECT interval_seconds FROM device_authorizations WHERE user_code = $1", strings.ReplaceAll(d.str("user_code"), "-", ""))
	}

	b.expectGrantError(code, "authorization_pending")
	b.expectGrantError(code, "slow_down") // at once: sooner than 5 s
	if got := interval(); got != 10 {
		t.Fatalf("interval after slow_down: %d, want 10", got)
	}
	clock.advance(6 * time.Second) // enough before, too soon now
	b.expectGrantError(code, "slow_down")
	if got := interval(); got != 15 {
		t.Fatalf("interval after the second slow_down: %d, want 15", got)
	}
	clock.advance(16 * time.Second)
	b.expectGrantError(code, "authorization_pending")
	if got := interval(); got != 15 {
		t.Fatalf("interval after a patient poll: %d, want 15", got)
	}
}

func TestDeviceExpiry(t *testing.T) {
	t.Parallel()
	clock := &offsetClock{}
	b := setup(t, setupOpts{now: clock.now})
	alice := b.bootstrap("alice@example.com")
	d := b.startDevice("ci", "nodes:read")
	b.expectGrantError(d.str("device_code"), "authorization_pending")

	clock.advance(10*time.Minute + time.Second)
	b.expectGrantError(d.str("device_code"), "expired_token")
	for _, r := range []req{
		{method: "POST", path: "/v1/auth/device/approve", body: approveBody(d.str("user_code"), alice.orgID)},
		{method: "POST", path: "/v1/auth/device/deny", body: map[string]string{"user_code": d.str("user_code")}},
		{method: "GET", path: "/v1/auth/device?user_code=" + d.str("user_code")},
	} {
		r.token = alice.access
		if resp := b.expect(r, 400); !strings.HasPrefix(resp.errMsg(), "user_code: has expired") {
			t.Errorf("%s %s: %s", r.method, r.path, resp.Raw)
		}
	}

	// An hour after its expiry the next start deletes it: the code is then unknown.
	clock.advance(time.Hour)
	b.startDevice("ci", "nodes:read")
	b.expectGrantError(d.str("device_code"), "invalid_grant")
	if n := b.count("SELECT count(*) FROM device_authorizations"); n != 1 {
		t.Fatalf("%d device authorizations after the prune, want 1", n)
	}
}

func TestDeviceDeny(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	d := b.startDevice("stranger's laptop", "nodes:read")
	r := b.expect(req{method: "POST", path: "/v1/auth/device/deny", token: alice.access, body: map[string]string{"user_code": d.str("user_code")}}, 200)
	if r.str("client_name") != "stranger's laptop" {
		t.Errorf("deny %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/auth/device/deny' AND user_id = $1", alice.userID); n != 1 {
		t.Errorf("%d audit entries of the denial", n)
	}
	b.expectGrantError(d.str("device_code"), "access_denied")
	b.expectGrantError(d.str("device_code"), "access_denied")
	// Decided: neither approved nor denied again.
	b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody(d.str("user_code"), alice.orgID)}, 409)
	b.expect(req{method: "POST", path: "/v1/auth/device/deny", token: alice.access, body: map[string]string{"user_code": d.str("user_code")}}, 409)
	if n := b.count("SELECT count(*) FROM api_tokens"); n != 0 {
		t.Fatalf("%d API tokens after a denial", n)
	}
}

func TestDeviceApproveNeedsSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	tok := b.apiToken(alice, "nodes:read", "members:admin", "organization:admin")
	d := b.startDevice("ci", "nodes:read")
	for name, h := range map[string]map[string]string{
		"bearer":    {"Authorization": "Bearer " + tok},
		"x-api-key": {"X-API-Key": tok},
	} {
		for _, r := range []req{
			{method: "POST", path: "/v1/auth/device/approve", body: approveBody(d.str("user_code"), alice.orgID)},
			{method: "POST", path: "/v1/auth/device/deny", body: map[string]string{"user_code": d.str("user_code")}},
			{method: "GET", path: "/v1/auth/device?user_code=" + d.str("user_code")},
		} {
			t.Run(name+" "+r.method+" "+r.path, func(t *testing.T) {
				r.header = h
				before := b.snapshot()
				resp := b.expect(r, 403)
				if resp.errMsg() != "an API token cannot approve a device; sign in" {
					t.Errorf("answer %s", resp.Raw)
				}
				b.unchanged(before)
			})
		}
	}
	b.expect(req{method: "POST", path: "/v1/auth/device/approve", body: approveBody(d.str("user_code"), alice.orgID)}, 401)
	b.expectGrantError(d.str("device_code"), "authorization_pending")
}

func TestDeviceApproveOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	bob := b.register("bob@example.com")
	viewer := b.join(alice, alice.orgID, "viewer@example.com", "viewer")
	d := b.startDevice("ci", "nodes:read", "provision:write")

	t.Run("not a member", func(t *testing.T) {
		for _, org := range []string{alice.orgID, "0d6f4bfa-6e3c-4f55-9c39-2cdb1ee1a0f1"} {
			r := b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: bob.access, body: approveBody(d.str("user_code"), org)}, 404)
			if r.errMsg() != "organization not found" || strings.Contains(string(r.Raw), "Alice") {
				t.Errorf("approve for %s: %s", org, r.Raw)
			}
		}
	})
	t.Run("none of the scopes held", func(t *testing.T) {
		only := b.startDevice("deploy", "provision:write")
		r := b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: viewer.access, body: approveBody(only.str("user_code"), alice.orgID)}, 403)
		if !strings.Contains(r.errMsg(), "provision:write") {
			t.Errorf("answer %s", r.Raw)
		}
		b.expectGrantError(only.str("device_code"), "authorization_pending")
	})

	// A viewer approves: the device gets the asked-for scopes the viewer
	// holds (nodes:read), never provision:write.
	ok := b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: viewer.access, body: approveBody(d.str("user_code"), alice.orgID)}, 200)
	if fmt.Sprint(ok.Body["scopes"]) != "[nodes:read]" {
		t.Errorf("approval answers %s, want the scopes narrowed to [nodes:read]", ok.Raw)
	}
	tok := b.expect(req{method: "POST", path: "/v1/auth/device/token", body: map[string]string{"device_code": d.str("device_code")}}, 200)
	if fmt.Sprint(tok.Body["scopes"]) != "[nodes:read]" {
		t.Errorf("the device's token: %s", tok.Raw)
	}
	if who := b.expect(req{method: "GET", path: "/v1/whoami", token: tok.str("token")}, 200); fmt.Sprint(who.Body["scopes"]) != "[nodes:read]" {
		t.Errorf("whoami with the device's token: %s", who.Raw)
	}

	// A member approves provision:write; demoted to viewer before the poll,
	// the device gets access_denied, never a token with more than they hold.
	d2 := b.startDevice("ci", "provision:write")
	member := b.join(alice, alice.orgID, "member@example.com", "member")
	b.expect(req{method: "POST", path: "/v1/auth/device/approve", token: member.access, body: approveBody(d2.str("user_code"), alice.orgID)}, 200)
	b.expect(req{method: "PUT", path: orgPath(alice.orgID, "members", member.userID, "role"), token: alice.access, body: map[string]string{"role": "viewer"}}, 200)
	b.expectGrantError(d2.str("device_code"), "access_denied")
}

func TestDeviceBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.bootstrap("alice@example.com")
	d := b.startDevice("ci", "nodes:read")
	for _, c := range []struct {
		name   string
		r      req
		status int
		prefix string
	}{
		{"no client_name", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"scopes": []string{"nodes:read"}}}, 400, "client_name: "},
		{"long client_name", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": strings.Repeat("x", 101), "scopes": []string{"nodes:read"}}}, 400, "client_name: "},
		{"no scopes", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": "ci"}}, 400, "scopes: at least one"},
		{"empty scopes", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": "ci", "scopes": []string{}}}, 400, "scopes: at least one"},
		{"unknown scope", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": "ci", "scopes": []string{"nodes:read", "root:all"}}}, 400, `scopes[1]: unknown permission "root:all"`},
		{"unknown field", req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": "ci", "scopes": []string{"nodes:read"}, "expires_in": 60}}, 400, "expires_in"},
		{"no device_code", req{method: "POST", path: "/v1/auth/device/token", body: map[string]any{}}, 400, "device_code: "},
		{"unknown device_code", req{method: "POST", path: "/v1/auth/device/token", body: map[string]any{"device_code": "nope"}}, 400, "invalid_grant"},
		{"no user_code", req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: map[string]any{"organization_id": alice.orgID}}, 400, "user_code: "},
		{"bad user_code", req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody("ABCD-123O", alice.orgID)}, 400, "user_code: "},
		{"no organization_id", req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: map[string]any{"user_code": d.str("user_code")}}, 400, "organization_id: "},
		{"bad organization_id", req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody(d.str("user_code"), strings.ToUpper(alice.orgID))}, 400, "organization_id"},
		{"unknown user_code", req{method: "POST", path: "/v1/auth/device/approve", token: alice.access, body: approveBody("ZZZZ-9999", alice.orgID)}, 404, "user code not found"},
		{"deny without user_code", req{method: "POST", path: "/v1/auth/device/deny", token: alice.access, body: map[string]any{}}, 400, "user_code: "},
		{"get without user_code", req{method: "GET", path: "/v1/auth/device", token: alice.access}, 400, "user_code: "},
		{"get unknown user_code", req{method: "GET", path: "/v1/auth/device?user_code=zzzz9999", token: alice.access}, 404, "user code not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(c.r, c.status)
			if !strings.HasPrefix(r.errMsg(), c.prefix) && !strings.Contains(r.errMsg(), c.prefix) {
				t.Errorf("error %q, want it to name %q", r.errMsg(), c.prefix)
			}
			b.unchanged(before)
		})
	}
	b.expectGrantError(d.str("device_code"), "authorization_pending")
}

func TestDeviceStartRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 20 {
		b.startDevice("ci", "nodes:read")
	}
	r := b.expect(req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": "ci", "scopes": []string{"nodes:read"}}}, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("no Retry-After: %v", r.Header)
	}
}
