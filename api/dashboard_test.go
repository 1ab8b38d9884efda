package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// browser is a plain HTTP client of the dashboard with a cookie jar, as a
// browser without scripts would be.
type browser struct {
	t    *testing.T
	base string
	jar  *cookiejar.Jar
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, base: base, jar: jar, hc: hc}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (br *browser) cookie(name string) string {
	u, _ := url.Parse(br.base)
	for _, c := range br.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// dropCookie removes a cookie from the jar (as the browser does when it expires).
func (br *browser) dropCookie(name string) {
	u, _ := url.Parse(br.base)
	br.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "", Path: "/", MaxAge: -1}})
}

func (br *browser) get(path string) page {
	br.t.Helper()
	return br.send("GET", path, nil, nil)
}

// post sends a form with the session's CSRF token (unless the form names
// _csrf itself).
func (br *browser) post(path string, form url.Values) page {
	br.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", br.cookie("sf_csrf"))
	}
	return br.send("POST", path, strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func (br *browser) send(method, path string, body io.Reader, header map[string]string) page {
	br.t.Helper()
	r, err := http.NewRequest(method, br.base+path, body)
	if err != nil {
		br.t.Fatal(err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := br.hc.Do(r)
	if err != nil {
		br.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (br *browser) expect(p page, status int, what string) page {
	br.t.Helper()
	if p.status != status {
		br.t.Fatalf("%s: status %d, want %d; body:\n%s", what, p.status, status, p.body)
	}
	return p
}

// signIn signs in through the form (GET /login first: it sets the CSRF cookie).
func (br *browser) signIn(email string) {
	br.t.Helper()
	br.expect(br.get("/login"), 200, "GET /login")
	p := br.expect(br.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "sign in")
	if loc := p.header.Get("Location"); loc != "/" {
		br.t.Fatalf("sign in redirects to %q, want /", loc)
	}
}

var h1RE = regexp.MustCompile(`<h1[ >]`)

// TestDashboardSession: the sign-in form, cookies, security headers,
// CSRF, transparent refresh, MFA and sign-out.
func TestDashboardSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.bootstrap("owner@acme.test")
	base := b.listen()

	t.Run("headers and cookies", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		p := br.expect(br.get("/login"), 200, "GET /login")
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "style-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %s", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q allows inline code", csp)
		}
		if p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("X-Frame-Options %q", p.header.Get("X-Frame-Options"))
		}
		if strings.Contains(p.body, "<script>") || strings.Contains(p.body, " style=") || strings.Contains(p.body, "onclick") {
			t.Error("the page has inline script or style")
		}
		if n := len(h1RE.FindAllString(p.body, -1)); n != 1 {
			t.Errorf("%d h1, want 1", n)
		}
		setCookie := strings.Join(p.header.Values("Set-Cookie"), "\n")
		if !strings.Contains(setCookie, "sf_csrf=") || !strings.Contains(setCookie, "HttpOnly") || !strings.Contains(setCookie, "SameSite=Lax") {
			t.Errorf("CSRF cookie: %s", setCookie)
		}
		if isSecure(setCookie) {
			t.Error("Secure cookie over plain HTTP")
		}
		// X-Forwarded-Proto from a proxy the server does not trust is ignored.
		p = br.send("GET", "/login", nil, map[string]string{"X-Forwarded-Proto": "https", "Cookie": ""})
		if isSecure(strings.Join(p.header.Values("Set-Cookie"), "\n")) {
			t.Error("an untrusted X-Forwarded-Proto made the cookies Secure")
		}
		// Signed out, a page sends to the sign-in form.
		p = br.expect(br.get("/tokens"), 303, "GET /tokens signed out")
		if loc := p.header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("Location %q", loc)
		}
	})

	t.Run("csrf", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		br.get("/login")
		form := url.Values{"email": {owner.email}, "password": {testPassword}}
		for name, f := range map[string]url.Values{"none": form, "wrong": merge(form, "_csrf", strings.Repeat("x", 43))} {
			if name == "none" {
				f = merge(f, "_csrf", "")
			}
			p := br.post("/login", f)
			if p.status != 403 || br.cookie("sf_access") != "" {
				t.Errorf("%s token: status %d, signed in %v", name, p.status, br.cookie("sf_access") != "")
			}
		}
		br.signIn(owner.email)
		// A form post without the token is refused once signed in too, and
		// so is one from another origin that has it.
		before := b.count("SELECT count(*) FROM api_tokens")
		br.expect(br.post("/tokens", url.Values{"name": {"x"}, "_csrf": {""}}), 403, "token without CSRF")
		f := url.Values{"name": {"x"}, "_csrf": {br.cookie("sf_csrf")}}
		br.expect(br.send("POST", "/tokens", strings.NewReader(f.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.test"}), 403, "token from another origin")
		if after := b.count("SELECT count(*) FROM api_tokens"); after != before {
			t.Errorf("a refused post created a token (%d → %d)", before, after)
		}
	})

	t.Run("refresh and sign out", func(t *testing.T) {
		t.Parallel()
		b.register("refresh@acme.test")
		br := newBrowser(t, base)
		br.signIn("refresh@acme.test")
		p := br.expect(br.get("/"), 200, "overview")
		if !strings.Contains(p.body, "refresh@acme.test") {
			t.Error("overview does not show who is signed in")
		}
		oldRefresh := br.cookie("sf_refresh")
		br.dropCookie("sf_access") // expired
		br.expect(br.get("/tokens"), 200, "tokens after the access token expired")
		if br.cookie("sf_access") == "" || br.cookie("sf_refresh") == oldRefresh {
			t.Fatal("the session was not refreshed")
		}
		refresh := br.cookie("sf_refresh")
		br.expect(br.post("/logout", nil), 303, "sign out")
		if br.cookie("sf_access") != "" || br.cookie("sf_refresh") != "" {
			t.Error("cookies left after sign-out")
		}
		r := b.do(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": refresh}})
		if r.Status != 401 {
			t.Errorf("the refresh token still works after sign-out: %d", r.Status)
		}
	})

	t.Run("wrong password shows the API's message", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		br.get("/login")
		p := br.post("/login", url.Values{"email": {owner.email}, "password": {"wrong password here"}})
		if p.status != 401 || !strings.Contains(p.body, "invalid") {
			t.Errorf("status %d, body lacks the API's message:\n%s", p.status, p.body)
		}
	})

	t.Run("mfa", func(t *testing.T) {
		t.Parallel()
		a := b.register("mfa@acme.test")
		secret := b.expect(req{method: "POST", path: "/v1/auth/mfa/enroll", token: a.access}, 200).str("secret")
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": code}}, 200)
		br := newBrowser(t, base)
		br.get("/login")
		p := br.expect(br.post("/login", url.Values{"email": {a.email}, "password": {testPassword}}), 303, "password step")
		if !strings.Contains(p.header.Get("Location"), "mfa=1") || br.cookie("sf_access") != "" {
			t.Fatalf("no MFA step: %s", p.header.Get("Location"))
		}
		p = br.expect(br.get(p.header.Get("Location")), 200, "MFA form")
		if !strings.Contains(p.body, `name="code"`) {
			t.Fatal("no code field")
		}
		br.expect(br.post("/login/mfa", url.Values{"code": {"000000"}}), 401, "wrong code")
		code, _ = totp.GenerateCode(secret, time.Now().Add(30*time.Second)) // the next period: the enrolment used this one
		br.expect(br.post("/login/mfa", url.Values{"code": {code}}), 303, "right code")
		if br.cookie("sf_access") == "" {
			t.Fatal("not signed in after the MFA code")
		}
	})
}

func merge(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = vv
	}
	out.Set(k, val)
	return out
}

// TestDashboardPermissions: a viewer sees no write button and the server
// refuses the write; another organization's request is "not found"; an
// API token's secret is shown once.
func TestDashboardPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	owner := b.bootstrap("owner@acme.test")
	viewer := b.join(owner, owner.orgID, "viewer@acme.test", "viewer")
	other := b.register("other@else.test")
	created := b.expect(req{method: "POST", path: "/v1/provision", token: owner.access,
		body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1"}}, 201)
	id := created.str("id")
	base := b.listen()

	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		br.signIn(owner.email)
		p := br.expect(br.get("/provision"), 200, "provision list")
		if !strings.Contains(p.body, "web-1") || !strings.Contains(p.body, "New request") {
			t.Errorf("list lacks the request or the create button")
		}
		p = br.expect(br.get("/provision/"+id), 200, "request page")
		if !strings.Contains(p.body, `id="btn-plan"`) {
			t.Error("the owner has no Plan button")
		}
		p = br.expect(br.get("/provision/new"), 200, "create form")
		if !strings.Contains(p.body, `value="local/local-small"`) {
			t.Error("the create form lacks the local catalog")
		}
		// The form's refusal shows the API's message, naming the field.
		p = br.post("/provision", url.Values{"name": {"Bad Name"}, "region": {"local/local"}, "instance_type": {"local/local-small"}})
		if p.status != 400 || !strings.Contains(p.body, "name") {
			t.Errorf("bad name: status %d", p.status)
		}
		p = br.expect(br.post("/provision", url.Values{"name": {"web-2"}, "region": {"local/local"}, "instance_type": {"local/local-small"}}), 303, "create")
		if !strings.HasPrefix(p.header.Get("Location"), "/provision/") {
			t.Errorf("create redirects to %q", p.header.Get("Location"))
		}
		// The name search (POST /v1/provision/search).
		p = br.expect(br.get("/provision?name=EB-2"), 200, "search by name")
		if !strings.Contains(p.body, ">web-2<") || strings.Contains(p.body, ">web-1<") {
			t.Errorf("search for eb-2 does not show web-2 alone")
		}
		// A token's secret: on the creation's answer only.
		p = br.expect(br.post("/tokens", url.Values{"name": {"ci"}, "scopes": {"provision:read", "nodes:read"}}), 201, "create token")
		secret := regexp.MustCompile(`shardform_api_[A-Za-z0-9_-]+`).FindString(p.body)
		if secret == "" {
			t.Fatalf("no secret shown:\n%s", p.body)
		}
		who := b.expect(req{method: "GET", path: "/v1/whoami", token: secret}, 200)
		if scopes, _ := who.Body["scopes"].([]any); len(scopes) != 2 {
			t.Errorf("token scopes %v, want the two ticked", who.Body["scopes"])
		}
		p = br.expect(br.get("/tokens"), 200, "tokens")
		if strings.Contains(p.body, secret) || !strings.Contains(p.body, ">ci<") {
			t.Error("the secret is shown again, or the token is not listed")
		}
	})

	t.Run("viewer", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		br.signIn(viewer.email)
		br.expect(br.post("/org", url.Values{"organization_id": {owner.orgID}}), 303, "switch organization")
		p := br.expect(br.get("/provision/"+id), 200, "request page")
		for _, button := range []string{`id="btn-plan"`, `id="btn-destroy"`, `id="btn-apply"`, "New request"} {
			if strings.Contains(p.body, button) {
				t.Errorf("the viewer sees %s", button)
			}
		}
		p = br.expect(br.get("/provision"), 200, "list")
		if strings.Contains(p.body, "New request") {
			t.Error("the viewer sees the create button")
		}
		before := b.count("SELECT count(*) FROM provision_runs")
		p = br.expect(br.post("/provision/"+id+"/plan", nil), 303, "plan as viewer")
		p = br.expect(br.get(p.header.Get("Location")), 200, "after the refused plan")
		if !strings.Contains(p.body, "missing permission provision:write") {
			t.Error("the API's refusal is not shown")
		}
		if after := b.count("SELECT count(*) FROM provision_runs"); after != before {
			t.Error("the viewer's plan was queued")
		}
		p = br.post("/provision", url.Values{"name": {"sneaky"}, "region": {"local/local"}, "instance_type": {"local/local-small"}})
		if p.status != 403 {
			t.Errorf("viewer create: status %d, want 403", p.status)
		}
	})

	t.Run("members", func(t *testing.T) {
		t.Parallel()
		member := b.join(owner, owner.orgID, "member@acme.test", "member")
		br := newBrowser(t, base)
		br.signIn(owner.email)
		br.expect(br.post("/members/"+member.userID+"/role", url.Values{"role": {"admin"}}), 303, "set a role")
		p := br.expect(br.get("/members"), 200, "members")
		if !strings.Contains(p.body, "Member updated.") {
			t.Errorf("no confirmation of the role change")
		}
		r := b.expect(req{method: "GET", path: orgPath(owner.orgID, "members"), token: owner.access}, 200)
		for _, m := range r.list() {
			if m["email"] == "member@acme.test" && m["role"] != "admin" {
				t.Errorf("role after the form: %v", m["role"])
			}
		}
		br.expect(br.post("/members/"+member.userID+"/remove", nil), 303, "remove")
		if p = br.get("/members"); strings.Contains(p.body, "member@acme.test") {
			t.Error("the removed member is still listed")
		}
	})

	t.Run("another organization", func(t *testing.T) {
		t.Parallel()
		br := newBrowser(t, base)
		br.signIn(other.email)
		p := br.expect(br.get("/provision/"+id), 404, "another organization's request")
		if !strings.Contains(p.body, "not found") || strings.Contains(p.body, "web-1") {
			t.Error("the page does not say not found, or shows the request")
		}
		br.expect(br.post("/org", url.Values{"organization_id": {owner.orgID}}), 404, "switch to an organization one is not in")
	})
}

// TestDashboardAssets: the embedded htmx is the npm package's file; the
// embedded assets are small; the pages' scripts are this server's.
func TestDashboardAssets(t *testing.T) {
	t.Parallel()
	src := filepath.Join("..", "web", "node_modules", "htmx.org")
	if _, err := os.Stat(src); err == nil {
		for from, to := range map[string]string{"dist/htmx.min.js": "assets/htmx.min.js", "LICENSE": "htmx.LICENSE"} {
			want, err := os.ReadFile(filepath.Join(src, from))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join("..", "dashboard", to))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("dashboard/%s differs from the npm package's %s: run scripts/web-assets.sh", to, from)
			}
		}
	} else {
		t.Logf("web/node_modules is not installed (cd web && npm ci): the copy is not compared")
	}
	b := setup(t)
	for _, a := range []struct{ path, ct string }{{"/assets/htmx.min.js", "javascript"}, {"/assets/dashboard.js", "javascript"}, {"/assets/dashboard.css", "text/css"}} {
		r := b.expect(req{method: "GET", path: a.path, noContract: true}, 200)
		if !strings.Contains(r.Header.Get("Content-Type"), a.ct) {
			t.Errorf("%s: %s", a.path, r.Header.Get("Content-Type"))
		}
	}
	b.expect(req{method: "GET", path: "/assets/../go.mod", noContract: true}, 404)
	b.expect(req{method: "GET", path: "/assets/nope.js", noContract: true}, 404)
}

// TestDashboardPages renders every page for an owner on a server with
// every service, and runs the SSH, DNS and planner forms.
func TestDashboardPages(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{provisioning: true, externalWorkers: true, ssh: true})
	base := d.listen()
	br := newBrowser(t, base)
	br.signIn(d.a.email)
	for _, path := range []string{"/", "/provision", "/provision?status=applied", "/provision/new", "/nodes", "/tokens", "/members", "/audit", "/ssh", "/dns", "/planner", "/planner?go=1&cpu=2&memory_gb=4&disk_gb=10&count=3"} {
		p := br.expect(br.get(path), 200, "GET "+path)
		if n := len(h1RE.FindAllString(p.body, -1)); n != 1 {
			t.Errorf("%s: %d h1", path, n)
		}
		if strings.Contains(p.body, "no value") || strings.Contains(p.body, "ZgotmplZ") {
			t.Errorf("%s renders a template mistake", path)
		}
	}
	p := br.get("/planner?go=1&cpu=2&memory_gb=4&disk_gb=10&count=3")
	if !strings.Contains(p.body, `<svg class="chart"`) || !strings.Contains(p.body, `<rect class="bar"`) || !strings.Contains(p.body, "<td>1</td>") {
		t.Errorf("the recommendation has no ranked table or chart:\n%s", p.body)
	}
	if p = br.get("/planner?go=1&cpu=lots"); !strings.Contains(p.body, "cpu: must be a number") {
		t.Error("a bad number is not named")
	}

	// SSH: a CA key, then a pasted key signed.
	br.expect(br.post("/ssh/rotate", nil), 303, "rotate the user CA key")
	key := newUserKey(t, t.TempDir(), "id_ed25519")
	p = br.expect(br.post("/ssh/sign", url.Values{"public_key": {key.public}, "principals": {"ops"}}), 200, "sign")
	if !strings.Contains(p.body, "ssh-ed25519-cert-v01@openssh.com") || !strings.Contains(p.body, `download="id-cert.pub"`) {
		t.Errorf("no certificate to copy or download:\n%s", p.body)
	}
	p = br.expect(br.post("/ssh/sign", url.Values{"public_key": {"ssh-dss AAAA"}}), 400, "sign a bad key")
	if !strings.Contains(p.body, "public_key") {
		t.Error("the API's message naming the field is not shown")
	}
	p = br.expect(br.get("/ssh"), 200, "ssh")
	if !strings.Contains(p.body, "Revoke certificate") {
		t.Error("my certificate is not listed with a revoke button")
	}

	// The SSH policy through its form.
	br.expect(br.post("/ssh/policy", url.Values{"allowed_principals": {"ops, deploy"}, "default_validity_hours": {"8"}, "max_validity_hours": {"24"},
		"allowed_key_types": {"ssh-ed25519"}, "extensions": {"permit-pty"}}), 303, "save the SSH policy")
	pol := d.expect(req{method: "GET", path: "/v1/ssh/policy", token: d.a.access}, 200)
	if pol.Body["default_validity_hours"] != float64(8) || fmt.Sprint(pol.Body["allowed_principals"]) != "[ops deploy]" {
		t.Errorf("policy after the form: %s", pol.Raw)
	}

	// DNS: a record through the form.
	br.expect(br.post("/dns/create", url.Values{"zone_id": {zoneCom}, "type": {"A"}, "name": {"www"}, "content": {"192.0.2.1"}}), 303, "create a record")
	if p = br.get("/dns"); !strings.Contains(p.body, "192.0.2.1") {
		t.Error("the record is not listed")
	}

	// The audit log's filters (POST /v1/admin/audit-logs/search).
	p = br.expect(br.get("/audit?action=POST+%2Fv1%2Fdns&user_id="+d.a.userID), 200, "audit filtered")
	if !strings.Contains(p.body, "POST /v1/dns/records") || strings.Contains(p.body, "/v1/ssh/ca/keys/rotate") || !strings.Contains(p.body, d.a.email+"</td>") {
		t.Errorf("the filtered audit log:\n%s", p.body)
	}
	if p = br.get("/audit?user_id=not-an-id"); p.status != 400 || !strings.Contains(p.body, "user_id") {
		t.Errorf("a bad user_id: %d", p.status)
	}
}

// TestDashboardSecureBehindProxy: behind a trusted proxy that says the
// browser came over HTTPS, the session cookies are Secure.
func TestDashboardSecureBehindProxy(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{trustedProxies: []string{"127.0.0.1", "::1"}})
	b.bootstrap("owner@acme.test")
	br := newBrowser(t, b.listen())
	p := br.send("GET", "/login", nil, map[string]string{"X-Forwarded-Proto": "https"})
	if c := strings.Join(p.header.Values("Set-Cookie"), "\n"); !strings.Contains(c, "sf_csrf=") || !isSecure(c) {
		t.Errorf("cookies behind a trusted TLS proxy: %s", c)
	}
	p = br.send("GET", "/login", nil, nil)
	if c := strings.Join(p.header.Values("Set-Cookie"), "\n"); isSecure(c) {
		t.Errorf("Secure cookies over plain HTTP: %s", c)
	}
}

func isSecure(setCookie string) bool { return strings.Contains(strings.ToLower(setCookie), "; secure") }

// TestDashboardRiverUI: a platform admin's dashboard session opens River
// UI; another user's session does not, and a change with the cookie must
// come from this server's own pages.
func TestDashboardRiverUI(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{riverUI: true})
	admin := b.bootstrap("admin@acme.test")
	user := b.register("user@acme.test")
	base := b.listen()
	adminBr, userBr := newBrowser(t, base), newBrowser(t, base)
	adminBr.signIn(admin.email)
	userBr.signIn(user.email)
	adminBr.expect(adminBr.get("/riverui/api/jobs?state=available&limit=1"), 200, "River UI with an admin's session")
	if p := adminBr.get("/"); !strings.Contains(p.body, `href="/riverui/"`) {
		t.Error("the admin's menu has no link to River UI")
	}
	userBr.expect(userBr.get("/riverui/api/jobs?state=available&limit=1"), 404, "River UI with another user's session")
	if p := userBr.get("/"); strings.Contains(p.body, `href="/riverui/"`) {
		t.Error("a user who is not an admin sees the River UI link")
	}
	p := adminBr.send("POST", "/riverui/api/jobs/cancel", strings.NewReader(`{"job_ids":["1"]}`), map[string]string{
		"Content-Type": "application/json", "Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"})
	if p.status != 404 {
		t.Errorf("a cross-site change to River UI with the cookie: %d, want 404", p.status)
	}
}

// TestDashboardDevice: `shardform login`'s device flow approved on the
// dashboard's /device page: the code from the link shows what the device
// asks for; approving without the CSRF token is refused and changes
// nothing; approving for the chosen organization gives the CLI its token;
// a denied code answers access_denied; an unknown code is named.
func TestDashboardDevice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("owner@acme.test")
	base := b.listen()
	start := func(name string) (device, user string) {
		t.Helper()
		r := b.expect(req{method: "POST", path: "/v1/auth/device", body: map[string]any{"client_name": name, "scopes": []string{"nodes:read"}}}, 200)
		return r.str("device_code"), r.str("user_code")
	}
	poll := func(device string) response {
		t.Helper()
		return b.do(req{method: "POST", path: "/v1/auth/device/token", body: map[string]any{"device_code": device}})
	}
	br := newBrowser(t, base)
	// Signed out, the link goes to the sign-in form and comes back.
	device, user := start("shardform on laptop")
	p := br.expect(br.get("/device?code="+url.QueryEscape(user)), 303, "device page signed out")
	if loc := p.header.Get("Location"); loc != "/login?next="+url.QueryEscape("/device?code="+url.QueryEscape(user)) {
		t.Errorf("signed out, /device redirects to %q", loc)
	}
	br.signIn(a.email)
	p = br.expect(br.get("/device?code="+strings.ToLower(strings.ReplaceAll(user, "-", ""))), 200, "device page")
	for _, want := range []string{"shardform on laptop", "nodes:read", `name="decision" value="approve"`, a.orgID} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the device page lacks %q:\n%s", want, p.body)
		}
	}
	if n := len(h1RE.FindAllString(p.body, -1)); n != 1 {
		t.Errorf("device page: %d h1", n)
	}
	form := url.Values{"user_code": {user}, "organization_id": {a.orgID}, "decision": {"approve"}}
	br.expect(br.post("/device", merge(form, "_csrf", "forged")), 403, "approve without the CSRF token")
	if r := poll(device); r.Status != 400 || r.Body["error"] != "authorization_pending" {
		t.Fatalf("after a refused approval the poll answers %d %s", r.Status, r.Raw)
	}
	br.expect(br.post("/device", form), 303, "approve")
	if p = br.get("/device"); !strings.Contains(p.body, "Approved “shardform on laptop”") {
		t.Errorf("no confirmation after the approval:\n%s", p.body)
	}
	tok := poll(device)
	if tok.Status != 200 || !strings.HasPrefix(tok.str("token"), "shardform_api_") {
		t.Fatalf("the CLI's poll after the approval: %d %s", tok.Status, tok.Raw)
	}
	who := b.expect(req{method: "GET", path: "/v1/whoami", token: tok.str("token")}, 200)
	if org, _ := who.Body["organization"].(map[string]any); org["id"] != a.orgID {
		t.Errorf("the device's token is for %v, want %s", who.Body["organization"], a.orgID)
	}

	device, user = start("shardform on a stranger's box")
	br.expect(br.post("/device", url.Values{"user_code": {user}, "decision": {"deny"}}), 303, "deny")
	if r := poll(device); r.Status != 400 || r.Body["error"] != "access_denied" {
		t.Errorf("a denied device's poll: %d %s", r.Status, r.Raw)
	}
	if p = br.get("/device?code=ZZZZ-ZZZZ"); p.status != 200 || !strings.Contains(p.body, `role="alert"`) || strings.Contains(p.body, `value="approve"`) {
		t.Errorf("an unknown code: %d\n%s", p.status, p.body)
	}
}

// TestDashboardFirstAccount: on a server without any account the sign-in
// page offers to create the first one (POST /v1/auth/bootstrap), which
// signs in as the platform administrator; once an account exists the form
// is gone and a late setup is refused with the API's message.
func TestDashboardFirstAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := b.listen()
	br := newBrowser(t, base)
	p := br.expect(br.get("/login"), 200, "GET /login on a fresh server")
	if !strings.Contains(p.body, `action="/setup"`) || !strings.Contains(p.body, "<h1>Create the first account</h1>") {
		t.Fatalf("a fresh server's sign-in page offers no setup:\n%s", p.body)
	}
	form := url.Values{"email": {"first@acme.test"}, "password": {testPassword}, "password_again": {testPassword}}
	br.expect(br.post("/setup", merge(form, "_csrf", "forged")), 403, "setup without the CSRF token")
	p = br.expect(br.post("/setup", merge(form, "password_again", "something else")), 400, "setup with two passwords")
	if !strings.Contains(p.body, "the two passwords differ") {
		t.Errorf("mismatched passwords are not named:\n%s", p.body)
	}
	if st := b.expect(req{method: "GET", path: "/v1/auth/bootstrap/status"}, 200); st.Body["needs_bootstrap"] != true {
		t.Fatalf("a refused setup created an account: %s", st.Raw)
	}
	br.expect(br.post("/setup", form), 303, "setup")
	p = br.expect(br.get("/"), 200, "the overview after setup")
	if !strings.Contains(p.body, "first@acme.test") || !strings.Contains(p.body, "platform administrator") {
		t.Errorf("after setup the overview does not show the new administrator:\n%s", p.body)
	}

	other := newBrowser(t, base)
	p = other.expect(other.get("/login"), 200, "GET /login once an account exists")
	if strings.Contains(p.body, `action="/setup"`) {
		t.Error("the setup form is still offered once an account exists")
	}
	p = other.expect(other.post("/setup", url.Values{"email": {"late@acme.test"}, "password": {testPassword}, "password_again": {testPassword}}), 409, "a late setup")
	if !strings.Contains(p.body, `role="alert"`) || strings.Contains(p.body, `action="/setup"`) {
		t.Errorf("a late setup:\n%s", p.body)
	}
}
