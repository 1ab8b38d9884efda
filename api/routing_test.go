package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shardform/shardform/internal/sshtest"
)

func TestWrongMethodIs405WithAllow(t *testing.T) {
	b := setup(t)
	admin := b.bootstrap("admin@example.com")
	for _, tc := range []struct {
		method, path string
		status       int
		allow, msg   string
	}{
		{"POST", "/v1/whoami", 405, "GET, HEAD", "method POST not allowed on /v1/whoami: use GET"},
		{"DELETE", "/v1/users", 405, "GET, HEAD, POST", "method DELETE not allowed on /v1/users: use GET or POST"},
		{"PATCH", "/v1/users/0d6f4bfa-6e3c-4f55-9c39-2cdb1ee1a0f1", 405, "DELETE, GET, HEAD", "method PATCH not allowed on /v1/users/:id: use DELETE or GET"},
		{"PUT", "/v1/auth/login/", 405, "POST", "method PUT not allowed on /v1/auth/login: use POST"},
		{"GET", "/v1/no-such-thing", 404, "", "no such endpoint"},
		{"POST", "/v1/users/a/b/c", 404, "", "no such endpoint"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := b.do(req{method: tc.method, path: tc.path, token: admin.access, noContract: true})
			if r.Status != tc.status || r.errMsg() != tc.msg || r.Header.Get("Allow") != tc.allow {
				t.Errorf("status %d Allow %q body %s; want %d Allow %q error %q", r.Status, r.Header.Get("Allow"), r.Raw, tc.status, tc.allow, tc.msg)
			}
		})
	}
}

// logLines decodes the server's JSON log.
func logLines(t *testing.T, raw string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRequestLogNamesTheRouteNeverASecretPath(t *testing.T) {
	logs := &sshtest.LockedBuffer{}
	b := setup(t, setupOpts{logs: logs})
	owner := b.bootstrap("owner@example.com")
	token := b.invite(owner, owner.orgID, "bob@example.com", "member").str("token")
	bob := b.register("bob@example.com")
	b.expect(req{method: "POST", path: "/v1/invites/" + token + "/accept", token: bob.access}, 200)
	// A mistyped path with a secret in it matches no route: it is logged
	// with the secret redacted.
	b.expect(req{method: "POST", path: "/v1/invites/" + token + "/acept", token: bob.access, noContract: true}, 404)
	long := "/v1/" + strings.Repeat("x", 1000)
	b.expect(req{method: "GET", path: long, noContract: true}, 404)

	raw := logs.String()
	if strings.Contains(raw, token) || strings.Contains(raw, strings.TrimPrefix(token, "sfi_")) {
		t.Fatalf("the log holds the invite token:\n%s", raw)
	}
	var accepted, unmatched, longLine bool
	for _, l := range logLines(t, raw) {
		if l["msg"] != "request" {
			continue
		}
		if len(fmt.Sprint(l["path"])) > 250 {
			t.Errorf("a logged path is %d bytes", len(fmt.Sprint(l["path"])))
		}
		switch {
		case l["route"] == "/v1/invites/:token/accept" && l["status"] == float64(200):
			accepted = true
			if _, ok := l["path"]; ok {
				t.Errorf("a matched request logs its path: %v", l)
			}
		case l["route"] == "unmatched" && l["path"] == "/v1/invites/sfi_[redacted]/acept":
			unmatched = true
		case l["route"] == "unmatched" && strings.HasPrefix(fmt.Sprint(l["path"]), "/v1/xxx"):
			longLine = true
		}
	}
	if !accepted || !unmatched || !longLine {
		t.Errorf("accept logged by route %v, unmatched redacted %v, long path cut %v:\n%s", accepted, unmatched, longLine, raw)
	}
}

// TestMetricsAfterMixedTraffic serves real connections with keep-alive, as
// Fiber reuses a connection's buffers from one request to the next.
func TestMetricsAfterMixedTraffic(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := setup(t, setupOpts{metrics: reg})
	admin := b.bootstrap("admin@example.com")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = b.srv.App().Shutdown() })
	base := "http://" + ln.Addr().String()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(method, path, body string) error {
		r, err := http.NewRequestWithContext(context.Background(), method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Authorization", "Bearer "+admin.access)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(r)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	traffic := [][3]string{
		{"GET", "/v1/whoami", ""}, {"POST", "/v1/organizations", `{"name":"m"}`},
		{"PUT", "/v1/organizations/" + admin.orgID, `{"name":"renamed"}`}, {"PATCH", "/v1/organizations/" + admin.orgID, `{"name":"again"}`},
		{"DELETE", "/v1/api-tokens/0d6f4bfa-6e3c-4f55-9c39-2cdb1ee1a0f1", ""}, {"GET", "/v1/users", ""},
		{"POST", "/v1/whoami", ""}, {"GET", "/v1/nope", ""}, {"GET", "/health", ""},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				tr := traffic[(i+w)%len(traffic)]
				if err := send(tr[0], tr[1], tr[2]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	fam := families["shardform_http_requests_total"]
	if fam == nil {
		t.Fatalf("no shardform_http_requests_total in %s", body)
	}
	methods := map[string]bool{}
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "method":
				methods[l.GetValue()] = true
			case "route":
				if strings.Contains(l.GetValue(), admin.orgID) || strings.Contains(l.GetValue(), "nope") {
					t.Errorf("route label holds a path: %q", l.GetValue())
				}
			}
		}
	}
	for m := range methods {
		if !map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}[m] {
			t.Errorf("method label %q", m)
		}
	}
	if len(methods) != 5 {
		t.Errorf("method labels %v, want the five methods sent", methods)
	}
}
