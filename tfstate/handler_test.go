package tfstate_test

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Terraform's Content-MD5
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/tfstate"
)

func contentMD5(b []byte) string {
	sum := md5.Sum(b) //nolint:gosec // see import
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestHandler walks one state through the http backend's protocol, step by
// step, with the statuses and bodies Terraform relies on.
func TestHandler(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	provA, provB := b.provision(t, org), b.provision(t, org)
	_, userA, passA := b.runGrant(t, org, provA)
	_, userB, passB := b.runGrant(t, org, provB)
	stateA, err := b.svc.ProvisionState(ctx, org, provA)
	if err != nil {
		t.Fatal(err)
	}
	expiredUser, expiredPass, err := b.svc.MintRunCredential(ctx, stateA, uuid.New(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(2 * time.Minute)

	// Custom states: a user named by X-Test-User ("rw" or "ro") in the test,
	// a run credential otherwise.
	runAuth := tfstate.RunAuthenticator(b.svc)
	auth := func(r *http.Request, target tfstate.Target) (tfstate.Grant, error) {
		if u := r.Header.Get("X-Test-User"); u != "" && target.CustomName != "" {
			return b.svc.CustomGrant(r.Context(), org, target.CustomName, u == "rw")
		}
		return runAuth(r, target)
	}
	srv := httptest.NewServer(http.StripPrefix("/v1/terraform/state", tfstate.Handler(b.svc, auth)))
	t.Cleanup(srv.Close)
	base := srv.URL + "/v1/terraform/state/"
	a := base + provA.String()

	state1 := stateFile(1, "lin", "")
	state2 := stateFile(2, "lin", "")
	infoX, infoY := lockInfo("x-lock", "x@host"), lockInfo("y-lock", "y@host")
	jsonBody := func(want []byte) func(t *testing.T, body []byte, h http.Header) {
		return func(t *testing.T, body []byte, _ http.Header) {
			if !jsonEqual(t, body, want) {
				t.Fatalf("body %s, want %s", body, want)
			}
		}
	}
	errorBody := func(substr string) func(t *testing.T, body []byte, h http.Header) {
		return func(t *testing.T, body []byte, _ http.Header) {
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, substr) {
				t.Fatalf("body %s, want an error containing %q", body, substr)
			}
		}
	}
	steps := []struct {
		name       string
		method     string
		url        string
		user, pass string
		header     map[string]string
		body       []byte
		want       int
		check      func(t *testing.T, body []byte, h http.Header)
	}{
		{name: "no credential", method: "GET", url: a, want: 401, check: func(t *testing.T, body []byte, h http.Header) {
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
			}
		}},
		{name: "wrong password", method: "GET", url: a, user: userA, pass: passA + "x", want: 401, check: errorBody("invalid or expired")},
		{name: "expired credential", method: "GET", url: a, user: expiredUser, pass: expiredPass, want: 401},
		{name: "credential of another state", method: "GET", url: a, user: userB, pass: passB, want: 404, check: errorBody("state not found")},
		{name: "bad provision id", method: "GET", url: base + "not-a-uuid", user: userA, pass: passA, want: 400, check: errorBody("provision_id")},
		{name: "uppercase provision id", method: "GET", url: base + strings.ToUpper(provA.String()), user: userA, pass: passA, want: 400},
		{name: "bad custom name", method: "GET", url: base + "custom/Bad_Name", user: userA, pass: passA, want: 400, check: errorBody("name: must be a DNS label")},
		{name: "unknown route", method: "GET", url: a + "/versions", user: userA, pass: passA, want: 404},
		{name: "delete state", method: "DELETE", url: a, user: userA, pass: passA, want: 405, check: errorBody("not allowed")},
		{name: "no state yet", method: "GET", url: a, user: userA, pass: passA, want: 204},
		{name: "not a state file", method: "POST", url: a, user: userA, pass: passA, body: []byte(`{"serial":"one"}`), want: 400, check: errorBody("serial")},
		{name: "bad Content-MD5", method: "POST", url: a, user: userA, pass: passA, body: state1, header: map[string]string{"Content-MD5": contentMD5([]byte("x"))}, want: 400, check: errorBody("Content-MD5")},
		{name: "first write", method: "POST", url: a, user: userA, pass: passA, body: state1, header: map[string]string{"Content-MD5": contentMD5(state1)}, want: 200},
		{name: "read", method: "GET", url: a, user: userA, pass: passA, want: 200, check: func(t *testing.T, body []byte, h http.Header) {
			if !bytes.Equal(body, state1) || h.Get("Content-MD5") != contentMD5(state1) {
				t.Fatalf("body %s, Content-MD5 %q", body, h.Get("Content-MD5"))
			}
		}},
		{name: "lineage mismatch", method: "POST", url: a, user: userA, pass: passA, body: stateFile(2, "other", ""), want: 409, check: errorBody("lineage")},
		{name: "serial backwards", method: "POST", url: a, user: userA, pass: passA, body: stateFile(0, "lin", ""), want: 409, check: errorBody("serial 0 is older")},
		{name: "lock", method: "POST", url: a + "/lock", user: userA, pass: passA, body: infoX, want: 200},
		{name: "second lock", method: "POST", url: a + "/lock", user: userA, pass: passA, body: infoY, want: 423, check: jsonBody(infoX)},
		{name: "second lock, LOCK method", method: "LOCK", url: a + "/lock", user: userA, pass: passA, body: infoY, want: 423, check: jsonBody(infoX)},
		{name: "write under another lock ID", method: "POST", url: a + "?ID=y-lock", user: userA, pass: passA, body: state2, want: 409, check: errorBody(`locked by lock "x-lock"`)},
		{name: "write under the lock", method: "POST", url: a + "?ID=x-lock", user: userA, pass: passA, body: state2, want: 200},
		{name: "unlock with another ID", method: "DELETE", url: a + "/lock", user: userA, pass: passA, body: infoY, want: 409, check: jsonBody(infoX)},
		{name: "unlock", method: "DELETE", url: a + "/lock", user: userA, pass: passA, body: infoX, want: 200},
		{name: "unlock again", method: "UNLOCK", url: a + "/lock", user: userA, pass: passA, body: infoX, want: 200},
		{name: "lock info too large", method: "POST", url: a + "/lock", user: userA, pass: passA, body: bytes.Repeat([]byte("x"), tfstate.MaxLockInfoSize+1), want: 413, check: errorBody("at most 64 KiB")},
		{name: "read the last write", method: "GET", url: a, user: userA, pass: passA, want: 200, check: func(t *testing.T, body []byte, _ http.Header) {
			if !bytes.Equal(body, state2) {
				t.Fatalf("body %s", body)
			}
		}},
		{name: "run credential on a custom state", method: "GET", url: base + "custom/net", user: userA, pass: passA, want: 404},
		{name: "custom state, PUT", method: "PUT", url: base + "custom/net", header: map[string]string{"X-Test-User": "rw"}, body: state1, want: 405},
		{name: "custom state, none yet", method: "GET", url: base + "custom/net", header: map[string]string{"X-Test-User": "ro"}, want: 204},
		{name: "custom state, read-only lock", method: "POST", url: base + "custom/net/lock", header: map[string]string{"X-Test-User": "ro"}, body: infoX, want: 403},
		{name: "custom state, lock", method: "POST", url: base + "custom/net/lock", header: map[string]string{"X-Test-User": "rw"}, body: infoX, want: 200},
		{name: "custom state, write", method: "POST", url: base + "custom/net?ID=x-lock", header: map[string]string{"X-Test-User": "rw"}, body: state1, want: 200},
		{name: "custom state, unlock", method: "DELETE", url: base + "custom/net/lock", header: map[string]string{"X-Test-User": "rw"}, body: infoX, want: 200},
		{name: "custom state, read", method: "GET", url: base + "custom/net", header: map[string]string{"X-Test-User": "ro"}, want: 200, check: func(t *testing.T, body []byte, _ http.Header) {
			if !bytes.Equal(body, state1) {
				t.Fatalf("body %s", body)
			}
		}},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, st.method, st.url, bytes.NewReader(st.body))
			if err != nil {
				t.Fatal(err)
			}
			if st.user != "" {
				req.SetBasicAuth(st.user, st.pass)
			}
			for k, v := range st.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != st.want {
				t.Fatalf("%s %s: %d %s, want %d", st.method, st.url, resp.StatusCode, body, st.want)
			}
			if ct := resp.Header.Get("Content-Type"); len(body) > 0 && ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if st.check != nil {
				st.check(t, body, resp.Header)
			}
		})
		if !ok {
			break // later steps depend on this one
		}
	}
}

func TestBackendEnv(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("6f1d3c0e-4b7a-4c1e-9f3a-2d5b8e7c1a90")
	tests := []struct {
		name   string
		base   string
		target tfstate.Target
		addr   string
	}{
		{"provision", "http://127.0.0.1:9/v1/terraform/state", tfstate.Target{ProvisionID: id}, "http://127.0.0.1:9/v1/terraform/state/" + id.String()},
		{"trailing slash", "http://127.0.0.1:9/s/", tfstate.Target{ProvisionID: id}, "http://127.0.0.1:9/s/" + id.String()},
		{"custom", "https://sf.example/v1/terraform/state", tfstate.Target{CustomName: "net"}, "https://sf.example/v1/terraform/state/custom/net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tfstate.BackendEnv(tt.base, tt.target, "run-x", "pw")
			want := map[string]string{
				"TF_HTTP_ADDRESS": tt.addr, "TF_HTTP_LOCK_ADDRESS": tt.addr + "/lock", "TF_HTTP_UNLOCK_ADDRESS": tt.addr + "/lock",
				"TF_HTTP_LOCK_METHOD": "POST", "TF_HTTP_UNLOCK_METHOD": "DELETE", "TF_HTTP_USERNAME": "run-x", "TF_HTTP_PASSWORD": "pw",
			}
			if len(got) != len(want) {
				t.Fatalf("BackendEnv = %v", got)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
