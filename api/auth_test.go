package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	st := b.expect(req{method: "GET", path: "/v1/auth/bootstrap/status"}, 200)
	if st.Body["needs_bootstrap"] != true {
		t.Fatalf("needs_bootstrap = %v before any user", st.Body["needs_bootstrap"])
	}
	// Register is refused before bootstrap, and changes nothing.
	before := b.snapshot()
	r := b.expect(req{method: "POST", path: "/v1/auth/register", body: map[string]string{"email": "a@example.com", "password": testPassword}}, 409)
	if !strings.Contains(r.errMsg(), "bootstrap") {
		t.Errorf("register before bootstrap: %q", r.errMsg())
	}
	b.unchanged(before)

	admin := b.bootstrap("Admin@Example.com")
	if admin.email != "Admin@Example.com" || admin.access == "" {
		t.Fatalf("bootstrap account %+v", admin)
	}
	me := b.expect(req{method: "GET", path: "/v1/users/me", token: admin.access}, 200)
	if me.str("email") != "admin@example.com" || me.Body["is_admin"] != true {
		t.Errorf("me = %s", me.Raw)
	}
	st = b.expect(req{method: "GET", path: "/v1/auth/bootstrap/status"}, 200)
	if st.Body["needs_bootstrap"] != false {
		t.Errorf("needs_bootstrap = %v after bootstrap", st.Body["needs_bootstrap"])
	}
	before = b.snapshot()
	b.expect(req{method: "POST", path: "/v1/auth/bootstrap", body: map[string]string{"email": "other@example.com", "password": testPassword}}, 409)
	b.unchanged(before)
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	tests := []struct {
		name    string
		body    any
		status  int
		wantMsg string
	}{
		{"short password", map[string]string{"email": "u@example.com", "password": "short"}, 400, "password: must be at least 10 characters"},
		{"bad email", map[string]string{"email": "not-an-email", "password": testPassword}, 400, "email: must be a valid email address"},
		{"missing email", map[string]string{"password": testPassword}, 400, "email: is required"},
		{"unknown field", map[string]any{"email": "u@example.com", "password": testPassword, "admin": true}, 400, "admin: unknown field"},
		{"wrong type", map[string]any{"email": 5, "password": testPassword}, 400, "email: must be a string"},
		{"trailing data", `{"email":"u@example.com","password":"correct horse battery"} {}`, 400, "trailing data"},
		{"malformed", `{"email":`, 400, "malformed JSON"},
		{"empty body", "", 400, "request body is required"},
		{"duplicate email", map[string]string{"email": "ADMIN@example.com", "password": testPassword}, 409, "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/auth/register", body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.wantMsg)
			}
			b.unchanged(before)
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		r := b.expect(req{method: "POST", path: "/v1/auth/register", body: "email=x", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 400)
		if !strings.Contains(r.errMsg(), "Content-Type") {
			t.Errorf("error %q", r.errMsg())
		}
	})
	t.Run("body too large", func(t *testing.T) {
		// Over a real connection (the in-memory transport rejects large
		// bodies before the app sees them). The server answers from the
		// Content-Length alone, so only the headers are sent.
		base := b.listen()
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 2<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("status %d body %s, want 413 with a JSON error", resp.StatusCode, body)
		}
	})
}

func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{closeRegistration: true})
	b.bootstrap("admin@example.com")
	before := b.snapshot()
	b.expect(req{method: "POST", path: "/v1/auth/register", body: map[string]string{"email": "u@example.com", "password": testPassword}}, 403)
	b.unchanged(before)
}

func TestLogin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	ok := b.login("admin@example.com", testPassword)
	if ok.Body["expires_in"] != float64(900) || ok.str("token_type") != "Bearer" || ok.str("refresh_token") == "" {
		t.Fatalf("login body %s", ok.Raw)
	}
	tests := []struct {
		name   string
		body   map[string]string
		status int
	}{
		{"wrong password", map[string]string{"email": "admin@example.com", "password": "wrong password!"}, 401},
		{"unknown user", map[string]string{"email": "nobody@example.com", "password": testPassword}, 401},
		{"missing password", map[string]string{"email": "admin@example.com"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.expect(req{method: "POST", path: "/v1/auth/login", body: tt.body, header: map[string]string{"X-Forwarded-For": tt.name}}, tt.status)
			if r.errMsg() == "" {
				t.Errorf("no error message: %s", r.Raw)
			}
		})
	}
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	bad := map[string]string{"email": "admin@example.com", "password": "wrong password!"}
	for range 5 {
		b.expect(req{method: "POST", path: "/v1/auth/login", body: bad}, 401)
	}
	// Locked: even the right password is refused, with Retry-After.
	r := b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": "admin@example.com", "password": testPassword}}, 429)
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	if !strings.Contains(r.errMsg(), "locked") {
		t.Errorf("error %q", r.errMsg())
	}
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.bootstrap("admin@example.com")
	// 20 attempts a minute per address, whatever the account; bootstrap's
	// sign-in was the first.
	for i := range 19 {
		b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": "user" + string(rune('a'+i)) + "@example.com", "password": testPassword}}, 401)
	}
	r := b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": "admin@example.com", "password": testPassword}}, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{refreshReuse: -1}) // every reuse is theft
	a := b.bootstrap("admin@example.com")

	r1 := b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": a.refresh}}, 200)
	second := r1.str("refresh_token")
	if second == "" || second == a.refresh || r1.str("access_token") == "" {
		t.Fatalf("refresh body %s", r1.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/users/me", token: r1.str("access_token")}, 200)

	// Reusing the rotated token is theft: the whole family is revoked,
	// including the token it was rotated into.
	r := b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": a.refresh}}, 401)
	if !strings.Contains(r.errMsg(), "already used") {
		t.Errorf("reuse error %q", r.errMsg())
	}
	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": second}}, 401)

	// Another login is a separate family and still works.
	other := b.login("admin@example.com", testPassword)
	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": other.str("refresh_token")}}, 200)

	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": "sfr_bogus"}}, 401)
	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{}}, 400)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	b.expect(req{method: "POST", path: "/v1/auth/logout", body: map[string]string{"refresh_token": a.refresh}}, 204)
	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": a.refresh}}, 401)
}

func TestAccessTokenChecks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no credential", nil, 401},
		{"garbage bearer", map[string]string{"Authorization": "Bearer nonsense"}, 401},
		{"tampered jwt", map[string]string{"Authorization": "Bearer " + a.access[:len(a.access)-4] + "AAAA"}, 401},
		{"basic scheme", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401},
		{"unknown api key", map[string]string{"X-API-Key": "shardform_api_nope"}, 401},
		{"valid", map[string]string{"Authorization": "Bearer " + a.access}, 200},
		{"bad org header", map[string]string{"Authorization": "Bearer " + a.access, "X-Organization-ID": "nope"}, 400},
		{"foreign org header", map[string]string{"Authorization": "Bearer " + a.access, "X-Organization-ID": "00000000-0000-0000-0000-000000000001"}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.expect(req{method: "GET", path: "/v1/users/me", header: tt.header}, tt.status)
			if tt.status != 200 && r.errMsg() == "" {
				t.Errorf("no JSON error: %s", r.Raw)
			}
			if tt.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	before := b.snapshot()
	b.expect(req{method: "POST", path: "/v1/users/me/password", token: a.access, body: map[string]string{"current_password": "wrong password!", "new_password": "a new password 2"}}, 403)
	b.expect(req{method: "POST", path: "/v1/users/me/password", token: a.access, body: map[string]string{"current_password": testPassword, "new_password": "short"}}, 400)
	b.unchanged(before)

	r := b.expect(req{method: "POST", path: "/v1/users/me/password", token: a.access, body: map[string]string{"current_password": testPassword, "new_password": "a new password 2"}}, 200)
	// The old access and refresh tokens stop working; the new session works.
	b.expect(req{method: "GET", path: "/v1/users/me", token: a.access}, 401)
	b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": a.refresh}}, 401)
	b.expect(req{method: "GET", path: "/v1/users/me", token: r.str("access_token")}, 200)
	b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": "admin@example.com", "password": testPassword}}, 401)
	b.login("admin@example.com", "a new password 2")
}

func TestMFA(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	st := b.expect(req{method: "GET", path: "/v1/auth/mfa/status", token: a.access}, 200)
	if st.Body["enabled"] != false {
		t.Fatalf("status %s", st.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": "123456"}}, 409)
	enr := b.expect(req{method: "POST", path: "/v1/auth/mfa/enroll", token: a.access}, 200)
	secret := enr.str("secret")
	if secret == "" || !strings.HasPrefix(enr.str("otpauth_uri"), "otpauth://totp/") {
		t.Fatalf("enroll %s", enr.Raw)
	}
	// The secret is sealed at rest.
	var stored []byte
	if err := b.pool.QueryRow(t.Context(), "SELECT mfa_secret FROM users WHERE email = 'admin@example.com'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), secret) {
		t.Fatal("MFA secret stored in plain text")
	}
	b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": "000000"}}, 400)
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": code(now)}}, 200)

	// Login now asks for a code.
	login := b.login("admin@example.com", testPassword)
	if login.Body["mfa_required"] != true || login.str("access_token") != "" {
		t.Fatalf("login with MFA %s", login.Raw)
	}
	ch := login.str("challenge_token")
	b.expect(req{method: "POST", path: "/v1/auth/mfa/challenge", body: map[string]string{"challenge_token": ch, "code": "000000"}}, 401)
	// The code used to verify cannot be replayed; the next step's code works.
	b.expect(req{method: "POST", path: "/v1/auth/mfa/challenge", body: map[string]string{"challenge_token": ch, "code": code(now)}}, 401)
	sess := b.expect(req{method: "POST", path: "/v1/auth/mfa/challenge", body: map[string]string{"challenge_token": ch, "code": code(now.Add(30 * time.Second))}}, 200)
	b.expect(req{method: "GET", path: "/v1/users/me", token: sess.str("access_token")}, 200)
	// A challenge is used once.
	b.expect(req{method: "POST", path: "/v1/auth/mfa/challenge", body: map[string]string{"challenge_token": ch, "code": code(now.Add(-30 * time.Second))}}, 401)
}

func TestMFAAttemptLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	b.expect(req{method: "POST", path: "/v1/auth/mfa/enroll", token: a.access}, 200)
	for range 5 {
		b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": "000000"}}, 400)
	}
	r := b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: a.access, body: map[string]string{"code": "000000"}}, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestBootstrapConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 6
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := b.try(req{method: "POST", path: "/v1/auth/bootstrap", body: map[string]string{"email": fmt.Sprintf("a%d@example.com", i), "password": testPassword}})
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.Status
		})
	}
	wg.Wait()
	close(statuses)
	created := 0
	for s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("status %d", s)
		}
	}
	if created != 1 || b.count("SELECT count(*) FROM users") != 1 {
		t.Fatalf("%d bootstraps succeeded, %d users", created, b.count("SELECT count(*) FROM users"))
	}
}

// TestRefreshReuseInterval: requests of one browser that found the access
// token expired at once each refresh with the same token (the dashboard's
// page and its live parts): within the reuse interval each gets a working
// session and the login stays; a reuse after it is theft and revokes the
// whole login, the sessions of the concurrent refreshes included.
func TestRefreshReuseInterval(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{refreshReuse: 2 * time.Second})
	a := b.bootstrap("admin@example.com")
	body := map[string]string{"refresh_token": a.refresh}
	var wg sync.WaitGroup
	answers := make([]response, 4)
	errs := make([]error, len(answers))
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = b.try(req{method: "POST", path: "/v1/auth/refresh", body: body}) })
	}
	wg.Wait()
	var rotated []string
	for i, r := range answers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Status != 200 {
			t.Fatalf("a concurrent refresh: %d %s", r.Status, r.Raw)
		}
		b.expect(req{method: "GET", path: "/v1/users/me", token: r.str("access_token")}, 200)
		rotated = append(rotated, r.str("refresh_token"))
	}
	// Past the interval the same token is theft: the login is revoked.
	time.Sleep(2500 * time.Millisecond)
	r := b.expect(req{method: "POST", path: "/v1/auth/refresh", body: body}, 401)
	if !strings.Contains(r.errMsg(), "already used") {
		t.Errorf("reuse after the interval: %s", r.Raw)
	}
	for _, tok := range rotated {
		b.expect(req{method: "POST", path: "/v1/auth/refresh", body: map[string]string{"refresh_token": tok}}, 401)
	}
}
