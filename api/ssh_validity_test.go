package api_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/internal/sshtest"
)

// TestSSHValidityBounds: every validity input is bounded before it becomes
// a duration (max_validity_hours 9223372036854775807 was taken, and
// validity_hours above ~2,562,047 overflowed into a certificate valid until
// year 219250468 recorded as ending in 1734, which the KRL then left out):
// each such request is a 400 naming its field, and a certificate of the
// longest validity, once revoked, is in the KRL (real ssh-keygen -Q says
// REVOKED).
func TestSSHValidityBounds(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	key := newUserKey(t, t.TempDir(), "id")
	policy := func(defaultHours, maxHours any) map[string]any {
		return map[string]any{"allowed_principals": []string{"root"}, "default_validity_hours": defaultHours, "max_validity_hours": maxHours,
			"allowed_key_types": []string{"ssh-ed25519"}, "extensions": []string{"permit-pty"}}
	}
	sign := func(hours any) map[string]any {
		return map[string]any{"public_key": key.public, "principals": []string{"root"}, "validity_hours": hours}
	}
	tests := []struct {
		name, method, path string
		body               any
		want               string // the error's start: the field, then the rule
	}{
		{"policy max int64", "PUT", "/v1/ssh/policy", policy(8, int64(math.MaxInt64)), "max_validity_hours: must be between 1 and 8760"},
		{"policy max over a year", "PUT", "/v1/ssh/policy", policy(8, 8761), "max_validity_hours: must be between 1 and 8760"},
		{"policy max overflowing a duration", "PUT", "/v1/ssh/policy", policy(8, 2_562_048), "max_validity_hours: must be between 1 and 8760"},
		{"policy max negative", "PUT", "/v1/ssh/policy", policy(8, int64(math.MinInt64)), "max_validity_hours: must be between 1 and 8760"},
		{"policy default int64", "PUT", "/v1/ssh/policy", policy(int64(math.MaxInt64), 24), "default_validity_hours: must be between 1 and max_validity_hours (24)"},
		{"policy max beyond int64", "PUT", "/v1/ssh/policy", `{"allowed_principals":["root"],"default_validity_hours":8,"max_validity_hours":99999999999999999999,"allowed_key_types":["ssh-ed25519"]}`, "max_validity_hours:"},
		{"validity int64", "POST", "/v1/ssh/certificate", sign(int64(math.MaxInt64)), "validity_hours: must be at most 24"},
		{"validity overflowing a duration", "POST", "/v1/ssh/certificate", sign(2_562_048), "validity_hours: must be at most 24"},
		{"validity beyond int64", "POST", "/v1/ssh/certificate", `{"public_key":"` + key.public + `","principals":["root"],"validity_hours":1e30}`, "validity_hours:"},
	}
	for _, tt := range tests {
		r := b.do(req{method: tt.method, path: tt.path, token: a.access, body: tt.body})
		if r.Status != 400 || !strings.HasPrefix(r.errMsg(), tt.want) {
			t.Errorf("%s: %s %s: %d %q, want 400 starting %q", tt.name, tt.method, tt.path, r.Status, r.errMsg(), tt.want)
		}
	}
	if n := b.count("SELECT count(*) FROM ssh_certificates"); n != 0 {
		t.Errorf("%d certificates signed for refused requests", n)
	}

	// The longest policy allowed; a request beyond it names the bound.
	b.expect(req{method: "PUT", path: "/v1/ssh/policy", token: a.access, body: policy(8, 8760)}, 200)
	for _, hours := range []any{8761, 2_562_048, int64(math.MaxInt64)} {
		r := b.do(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: sign(hours)})
		if r.Status != 400 || !strings.HasPrefix(r.errMsg(), "validity_hours: must be at most 8760") {
			t.Errorf("validity_hours %v: %d %q, want 400 naming validity_hours", hours, r.Status, r.errMsg())
		}
	}
	signed := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: sign(8760)}, 200)
	va, _ := time.Parse(time.RFC3339, signed.str("valid_after"))
	vb, _ := time.Parse(time.RFC3339, signed.str("valid_before"))
	if d := vb.Sub(va); d != 8760*time.Hour+5*time.Minute {
		t.Errorf("validity %v, want 8760h5m", d)
	}
	cert := parsePub(t, signed.str("certificate")).(*ssh.Certificate)
	if cert.ValidBefore != uint64(vb.Unix()) {
		t.Errorf("certificate ends at %d, the answer says %d", cert.ValidBefore, vb.Unix())
	}
	b.expect(req{method: "POST", path: "/v1/ssh/certificates/" + signed.str("id") + "/revoke", token: a.access}, 200)
	dir := t.TempDir()
	krl := b.expect(req{method: "GET", path: "/v1/ssh/krl?organization_id=" + a.orgID}, 200)
	krlPath, certPath := filepath.Join(dir, "krl"), filepath.Join(dir, "cert.pub")
	if err := os.WriteFile(krlPath, krl.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, []byte(signed.str("certificate")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", krlPath, certPath); code != 1 || !strings.Contains(out, "REVOKED") {
		t.Errorf("ssh-keygen -Q on the revoked one-year certificate: %d %s", code, out)
	}
}
