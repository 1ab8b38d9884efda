package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shardform/shardform/internal/sshtest"
)

func TestReadyNamesAQueueThisProcessCannotRun(t *testing.T) {
	b := setup(t, setupOpts{unavailable: map[string]string{"terraform": "terraform binary not found on this process: set SHARDFORM_TERRAFORM_PATH"}})
	for _, path := range []string{"/health/ready", "/ready"} {
		r := b.expect(req{method: "GET", path: path}, 200)
		un, _ := r.Body["unavailable"].(map[string]any)
		if r.str("status") != "degraded" || !strings.Contains(un["terraform"].(string), "SHARDFORM_TERRAFORM_PATH") {
			t.Errorf("%s: %s", path, r.Raw)
		}
	}
	r := b.expect(req{method: "GET", path: "/health/detailed"}, 200)
	if r.str("status") != "degraded" || !strings.Contains(string(r.Raw), `"unavailable":{"terraform"`) {
		t.Errorf("detailed: %s", r.Raw)
	}
	plain := setup(t)
	if r := plain.expect(req{method: "GET", path: "/health/ready"}, 200); r.str("status") != "ok" || r.Body["unavailable"] != nil {
		t.Errorf("a complete process: %s", r.Raw)
	}
}

// TestHealthErrorsArePublicAndGeneric: a failing queue query is reported
// in general words to the public and in detail to a platform admin and the
// log; a database that does not answer likewise.
func TestHealthErrorsArePublicAndGeneric(t *testing.T) {
	logs := &sshtest.LockedBuffer{}
	b := setup(t, setupOpts{logs: logs})
	admin := b.bootstrap("admin@example.com")
	member := b.register("member@example.com")
	if _, err := b.pool.Exec(context.Background(), "ALTER TABLE river_job RENAME TO river_job_gone"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		detail      bool
	}{
		{"public", "", false},
		{"a user who is not a platform admin", member.access, false},
		{"a platform admin", admin.access, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.expect(req{method: "GET", path: "/health/detailed", token: tc.token}, 503)
			q, _ := r.Body["queue"].(map[string]any)
			if q["error"] != "queue state unavailable" {
				t.Errorf("queue error %v", q)
			}
			if got := strings.Contains(string(r.Raw), "river_job"); got != tc.detail {
				t.Errorf("database error text shown: %v, want %v: %s", got, tc.detail, r.Raw)
			}
		})
	}
	if !strings.Contains(logs.String(), "river_job") {
		t.Errorf("the log lacks the cause")
	}

	b.pool.Close()
	for _, path := range []string{"/health/ready", "/health/detailed"} {
		r := b.expect(req{method: "GET", path: path}, 503)
		if !strings.Contains(string(r.Raw), `"database unavailable"`) || strings.Contains(string(r.Raw), "closed") {
			t.Errorf("%s: %s", path, r.Raw)
		}
	}
}
