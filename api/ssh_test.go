package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/dsa" //nolint:staticcheck // only to build a DSA public key the CA must refuse
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/worker"
)

// startSSH builds the SSH CA service and starts an in-process River worker
// for its ssh_sign jobs.
func startSSH(t *testing.T, pool *pgxpool.Pool, key []byte) *sshsign.Service {
	t.Helper()
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewStore(pool)
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close) // after the worker stops
	// River on its own asynchronous-commit pool, as `shardform serve` runs it.
	queuePool, err := store.QueuePool(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(queuePool.Close)
	client, err := worker.NewClient(queuePool, st, worker.Options{
		Work: true, SSH: svc, FetchPollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	return svc
}

// ---- OpenSSH helpers ----

// userKey is a user's key pair on disk.
type userKey struct {
	path   string // private key file
	public string // authorized_keys line
}

func newUserKey(t *testing.T, dir, name string) userKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeUserKey(t, dir, name, priv)
}

func writeUserKey(t *testing.T, dir, name string, priv crypto.Signer) userKey {
	t.Helper()
	path, public := sshtest.WriteKey(t, dir, name, priv)
	return userKey{path: path, public: public}
}

// ---- API helpers ----

// sshFiles fetches the public CA file and KRL of org into the sshd, the way
// a node would (no credential).
func (b *bundle) sshFiles(s *sshtest.SSHD, org string) (trusted string) {
	b.t.Helper()
	r := b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key?organization_id=" + org}, 200)
	sshtest.Replace(b.t, s.TrustedPath, r.Raw)
	krl := b.expect(req{method: "GET", path: "/v1/ssh/krl?organization_id=" + org}, 200)
	sshtest.Replace(b.t, s.KRLPath, krl.Raw)
	return string(r.Raw)
}

// sign asks for a certificate and writes it to dir/name.
func (b *bundle) sign(token string, key userKey, principals []string, dir, name string) (response, string) {
	b.t.Helper()
	r := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: token,
		body: map[string]any{"public_key": key.public, "principals": principals, "validity_hours": 1}}, 200)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(r.str("certificate")+"\n"), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return r, path
}

func currentLogin(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// allowLogin adds the test's login to the organization's policy when the
// default principals (root, shardform) do not cover it.
func (b *bundle) allowLogin(token, login string) {
	b.t.Helper()
	pol := b.expect(req{method: "GET", path: "/v1/ssh/policy", token: token}, 200)
	principals := pol.Body["allowed_principals"].([]any)
	for _, p := range principals {
		if p == login {
			return
		}
	}
	body := map[string]any{}
	for k, v := range pol.Body {
		body[k] = v
	}
	body["allowed_principals"] = append(principals, login)
	b.expect(req{method: "PUT", path: "/v1/ssh/policy", token: token, body: body}, 200)
}

// ---- tests ----

// TestSSHSignLoginRevokeRotate goes through the whole life of certificates
// with real OpenSSH: ssh-keygen -L reads them, sshd trusting the API's CA
// file accepts them, refuses them once revoked (the API's KRL), refuses
// another organization's, and honours rotation and retirement.
func TestSSHSignLoginRevokeRotate(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	login := currentLogin(t)
	b.allowLogin(a.access, login)
	s := sshtest.StartSSHD(t, login, nil)
	dir := t.TempDir()
	key := newUserKey(t, dir, "id_ed25519")

	signed, cert1 := b.sign(a.access, key, []string{login}, dir, "cert1.pub")
	if signed.Body["serial_number"] != float64(1) || signed.str("key_id") != fmt.Sprintf("user=ops@example.com org=%s serial=1", a.orgID) {
		t.Errorf("signed %s", signed.Raw)
	}
	va, _ := time.Parse(time.RFC3339, signed.str("valid_after"))
	vb, _ := time.Parse(time.RFC3339, signed.str("valid_before"))
	if d := vb.Sub(va); d != time.Hour+sshca.Backdate {
		t.Errorf("validity %v, want 1h5m", d)
	}
	caFP := signed.str("ca_fingerprint")

	t.Run("ssh-keygen -L", func(t *testing.T) {
		out, code := sshtest.Run(t, "ssh-keygen", "-L", "-f", cert1)
		if code != 0 {
			t.Fatalf("ssh-keygen -L: %d %s", code, out)
		}
		for _, want := range []string{
			"Type: ssh-ed25519-cert-v01@openssh.com user certificate",
			"Signing CA: ED25519 " + caFP,
			fmt.Sprintf(`Key ID: "user=ops@example.com org=%s serial=1"`, a.orgID),
			"Serial: 1",
			"Principals: \n                " + login,
			"permit-pty", "permit-agent-forwarding", "permit-port-forwarding",
			"Critical Options: (none)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("ssh-keygen -L lacks %q:\n%s", want, out)
			}
		}
	})

	trusted := b.sshFiles(s, a.orgID)
	if n := strings.Count(trusted, "\n"); n != 1 || !strings.HasPrefix(trusted, "ssh-ed25519 ") {
		t.Fatalf("ca-public-key: %q", trusted)
	}
	if ok, out := s.Login(t, login, key.path, cert1); !ok {
		t.Fatalf("login with a fresh certificate refused: %s", out)
	}

	// Another organization's certificate.
	other := b.register("other@example.com")
	b.allowLogin(other.access, login)
	_, otherCert := b.sign(other.access, key, []string{login}, dir, "other.pub")
	if ok, _ := s.Login(t, login, key.path, otherCert); ok {
		t.Error("another organization's certificate logged in")
	}

	// Revocation through the KRL.
	_, cert2 := b.sign(a.access, key, []string{login}, dir, "cert2.pub")
	rev := b.expect(req{method: "POST", path: "/v1/ssh/certificates/" + signed.str("id") + "/revoke", token: a.access}, 200)
	if rev.str("state") != "revoked" || rev.Body["revoked_at"] == nil {
		t.Errorf("revoked %s", rev.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/ssh/certificates/" + signed.str("id") + "/revoke", token: a.access}, 409)
	b.sshFiles(s, a.orgID)
	if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", s.KRLPath, cert1); code != 1 || !strings.Contains(out, "REVOKED") {
		t.Errorf("ssh-keygen -Q on the revoked certificate: %d %s", code, out)
	}
	if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", s.KRLPath, cert2); code != 0 {
		t.Errorf("ssh-keygen -Q on a valid certificate: %d %s", code, out)
	}
	if ok, _ := s.Login(t, login, key.path, cert1); ok {
		t.Error("revoked certificate logged in")
	}
	if ok, out := s.Login(t, login, key.path, cert2); !ok {
		t.Errorf("unrevoked certificate refused: %s", out)
	}

	// Rotation: the old key stays trusted, new certificates use the new key.
	keys := b.expect(req{method: "GET", path: "/v1/ssh/ca/keys", token: a.access}, 200).list()
	if len(keys) != 1 || keys[0]["fingerprint"] != caFP || keys[0]["signing"] != true || keys[0]["status"] != "active" {
		t.Fatalf("keys %v", keys)
	}
	oldID := keys[0]["id"].(string)
	rotated := b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/rotate", token: a.access}, 201)
	if rotated.str("fingerprint") == caFP || rotated.str("algorithm") != "ed25519" {
		t.Fatalf("rotated %s", rotated.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/" + rotated.str("id") + "/retire", token: a.access}, 409)
	newSigned, cert3 := b.sign(a.access, key, []string{login}, dir, "cert3.pub")
	// Serials come from one sequence for every CA key: unique per key and
	// never reused, not restarted at 1 by a rotation.
	if serial, _ := newSigned.Body["serial_number"].(float64); newSigned.str("ca_fingerprint") != rotated.str("fingerprint") || serial <= 3 {
		t.Errorf("after rotation signed %s", newSigned.Raw)
	}
	trusted = b.sshFiles(s, a.orgID)
	if lines := strings.Split(strings.TrimSpace(trusted), "\n"); len(lines) != 2 || lines[0] != rotated.str("public_key") {
		t.Fatalf("ca-public-key after rotation (new key first): %q", trusted)
	}
	if ok, out := s.Login(t, login, key.path, cert2); !ok {
		t.Errorf("old key's certificate refused after rotation: %s", out)
	}
	if ok, out := s.Login(t, login, key.path, cert3); !ok {
		t.Errorf("new key's certificate refused: %s", out)
	}
	if ok, _ := s.Login(t, login, key.path, cert1); ok {
		t.Error("revoked certificate logged in after rotation")
	}

	// Retirement: the old key is no longer trusted.
	ret := b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/" + oldID + "/retire", token: a.access}, 200)
	if ret.str("status") != "retired" {
		t.Errorf("retired %s", ret.Raw)
	}
	trusted = b.sshFiles(s, a.orgID)
	if strings.TrimSpace(trusted) != rotated.str("public_key") {
		t.Errorf("ca-public-key after retirement: %q", trusted)
	}
	if ok, _ := s.Login(t, login, key.path, cert2); ok {
		t.Error("retired key's certificate logged in")
	}
	if ok, out := s.Login(t, login, key.path, cert3); !ok {
		t.Errorf("active key's certificate refused after retirement: %s", out)
	}
	if !strings.Contains(s.Log.String(), fmt.Sprintf("ID user=ops@example.com org=%s serial=1", a.orgID)) {
		t.Errorf("sshd did not log the key id")
	}

	// The records.
	all := b.expect(req{method: "GET", path: "/v1/ssh/certificates", token: a.access}, 200)
	if all.Body["meta"].(map[string]any)["total"] != float64(3) {
		t.Errorf("certificates %s", all.Raw)
	}
	revoked := b.expect(req{method: "GET", path: "/v1/ssh/certificates?state=revoked", token: a.access}, 200).list()
	if len(revoked) != 1 || revoked[0]["id"] != signed.str("id") {
		t.Errorf("revoked filter %v", revoked)
	}
	active := b.expect(req{method: "GET", path: "/v1/ssh/certificates?state=active&user=me&limit=1", token: a.access}, 200)
	if len(active.list()) != 1 || active.Body["meta"].(map[string]any)["total"] != float64(2) {
		t.Errorf("active filter %s", active.Raw)
	}
	one := b.expect(req{method: "GET", path: "/v1/ssh/certificates/" + newSigned.str("id"), token: a.access}, 200)
	if one.str("key_fingerprint") != ssh.FingerprintSHA256(parsePub(t, key.public)) || one.str("certificate") != newSigned.str("certificate") ||
		one.str("user_id") != a.userID || one.str("ca_key_id") != rotated.str("id") {
		t.Errorf("certificate record %s", one.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/ssh/certificates?state=old", token: a.access}, 400)
}

func parsePub(t *testing.T, line string) ssh.PublicKey {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// dsaKey is a DSA public key line (the CA must refuse it whatever its size).
func dsaKey(t *testing.T) string {
	t.Helper()
	n := func(s string) *big.Int { v, _ := new(big.Int).SetString(s, 16); return v }
	k := &dsa.PublicKey{Parameters: dsa.Parameters{P: n("f" + strings.Repeat("1", 255)), Q: n("e" + strings.Repeat("3", 39)), G: n("2")}, Y: n("abcdef")}
	pub, err := ssh.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// TestSSHSignValidation: refused requests answer 400/403/404 naming the
// rule, and nothing is queued or recorded.
func TestSSHSignValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	dir := t.TempDir()
	good := newUserKey(t, dir, "id").public
	short, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	shortRSA := writeUserKey(t, dir, "rsa", short).public
	body := func(mut func(m map[string]any)) map[string]any {
		m := map[string]any{"public_key": good, "principals": []string{"root"}, "validity_hours": 8}
		mut(m)
		return m
	}
	tests := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"DSA key", body(func(m map[string]any) { m["public_key"] = dsaKey(t) }), 400, "public_key: DSA keys are not accepted"},
		{"short RSA key", body(func(m map[string]any) { m["public_key"] = shortRSA }), 400, "public_key: RSA keys must have at least 3072 bits, this one has 2048"},
		{"malformed key", body(func(m map[string]any) { m["public_key"] = "ssh-ed25519 AAAAnotakey" }), 400, "public_key: is not a valid OpenSSH public key"},
		{"no key", body(func(m map[string]any) { delete(m, "public_key") }), 400, "public_key: is required"},
		{"empty principals", body(func(m map[string]any) { m["principals"] = []string{} }), 400, "principals: must name at least one principal"},
		{"missing principals", body(func(m map[string]any) { delete(m, "principals") }), 400, "principals: must name at least one principal"},
		{"empty principal", body(func(m map[string]any) { m["principals"] = []string{"root", ""} }), 400, "principals: a principal must not be empty"},
		{"zero validity", body(func(m map[string]any) { m["validity_hours"] = 0 }), 400, "validity_hours: must be positive"},
		{"validity over max", body(func(m map[string]any) { m["validity_hours"] = 25 }), 400, "validity_hours: must be at most 24"},
		{"forbidden principal", body(func(m map[string]any) { m["principals"] = []string{"admin"} }), 403, `principal "admin" is not allowed`},
		{"bad source address", body(func(m map[string]any) { m["source_address"] = "somewhere" }), 400, "source_address:"},
		{"unknown node", body(func(m map[string]any) { m["node_id"] = uuid.NewString() }), 404, "node not found"},
		{"bad node id", body(func(m map[string]any) { m["node_id"] = "web-1" }), 400, "node_id: must be a node id"},
		{"unknown field", body(func(m map[string]any) { m["ttl"] = 5 }), 400, "ttl: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: tt.body})
			if r.Status != tt.status || !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("got %d %q, want %d containing %q", r.Status, r.errMsg(), tt.status, tt.want)
			}
		})
	}
	// Without ssh:sign.
	tok := b.apiToken(a, "nodes:read")
	b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: tok, body: body(func(map[string]any) {})}, 403)
	b.expect(req{method: "GET", path: "/v1/ssh/policy", token: tok}, 403)
	b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/rotate", token: tok}, 403)

	if n := b.count("SELECT count(*) FROM ssh_certificates"); n != 0 {
		t.Errorf("%d certificates recorded for refused requests", n)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'ssh_sign'"); n != 0 {
		t.Errorf("%d ssh_sign jobs queued for refused requests", n)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/ssh/certificate'"); n != 0 {
		t.Errorf("%d audit entries for refused requests", n)
	}

	// A certificate's audit entry is written with its record, naming the
	// request, the caller and the API token.
	signer := b.apiToken(a, "ssh:sign")
	signed := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: signer, body: body(func(map[string]any) {}),
		header: map[string]string{"X-Request-ID": "sign-audit-1"}}, 200)
	if n := b.count(`SELECT count(*) FROM audit_logs l JOIN api_tokens t ON t.id = l.api_token_id
		WHERE l.action = 'POST /v1/ssh/certificate' AND l.target = $1 AND l.status = 200 AND l.request_id = 'sign-audit-1'
		  AND l.organization_id = $2 AND l.user_id = t.user_id AND l.ip <> ''`, signed.str("id"), a.orgID); n != 1 {
		var got string
		_ = b.pool.QueryRow(context.Background(), "SELECT coalesce(json_agg(l)::text, '') FROM audit_logs l WHERE action = 'POST /v1/ssh/certificate'").Scan(&got)
		t.Errorf("audit entries of the certificate: %d, want 1: %s", n, got)
	}

	// Policy: refused when invalid; a stricter policy is applied.
	b.expect(req{method: "PUT", path: "/v1/ssh/policy", token: a.access, body: map[string]any{"allowed_principals": []string{"deploy"}, "default_validity_hours": 2, "max_validity_hours": 1, "allowed_key_types": []string{"ssh-ed25519"}}}, 400)
	pol := b.expect(req{method: "PUT", path: "/v1/ssh/policy", token: a.access, body: map[string]any{
		"allowed_principals": []string{"deploy"}, "default_validity_hours": 1, "max_validity_hours": 2,
		"allowed_key_types": []string{"ssh-ed25519"}, "extensions": []string{"permit-pty"}, "force_source_address": "127.0.0.0/8"}}, 200)
	if pol.str("force_source_address") != "127.0.0.0/8" {
		t.Errorf("policy %s", pol.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: body(func(map[string]any) {})}, 403)
	r := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: map[string]any{"public_key": good, "principals": []string{"deploy"}}}, 200)
	cert := parsePub(t, r.str("certificate")).(*ssh.Certificate)
	if cert.CriticalOptions["source-address"] != "127.0.0.0/8" || len(cert.Extensions) != 1 || cert.ValidBefore-cert.ValidAfter != uint64((time.Hour+sshca.Backdate)/time.Second) {
		t.Errorf("certificate under the strict policy: %+v", cert.Permissions)
	}
	// A member may always request their own username (ops, from
	// ops@example.com), but not someone else's.
	own := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: map[string]any{"public_key": good, "principals": []string{"ops", "deploy"}}}, 200)
	if got := parsePub(t, own.str("certificate")).(*ssh.Certificate).ValidPrincipals; len(got) != 2 || got[0] != "ops" {
		t.Errorf("own username: principals %v", got)
	}
	b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: map[string]any{"public_key": good, "principals": []string{"alice"}}}, 403)
}

// TestSSHTenantIsolation: one organization's certificates, keys and files
// are invisible to another's members; the public files need a known
// organization.
func TestSSHTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("mallory@example.com")
	key := newUserKey(t, t.TempDir(), "id").public
	signed := b.expect(req{method: "POST", path: "/v1/ssh/certificate", token: a.access, body: map[string]any{"public_key": key, "principals": []string{"root"}}}, 200)
	id := signed.str("id")

	b.expect(req{method: "GET", path: "/v1/ssh/certificates/" + id, token: other.access}, 404)
	b.expect(req{method: "POST", path: "/v1/ssh/certificates/" + id + "/revoke", token: other.access}, 404)
	if l := b.expect(req{method: "GET", path: "/v1/ssh/certificates", token: other.access}, 200).list(); len(l) != 0 {
		t.Errorf("other organization lists %v", l)
	}
	// Naming the other organization in the header does not help.
	b.expect(req{method: "GET", path: "/v1/ssh/certificates/" + id, token: other.access, header: map[string]string{"X-Organization-ID": a.orgID}}, 404)
	keys := b.expect(req{method: "GET", path: "/v1/ssh/ca/keys", token: a.access}, 200).list()
	b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/" + keys[0]["id"].(string) + "/retire", token: other.access}, 404)
	otherKeys := b.expect(req{method: "GET", path: "/v1/ssh/ca/keys", token: other.access}, 200).list()
	if len(otherKeys) != 1 || otherKeys[0]["fingerprint"] == keys[0]["fingerprint"] {
		t.Errorf("organizations share a CA key: %v %v", keys, otherKeys)
	}

	// Public files.
	byQuery := b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key?organization_id=" + a.orgID}, 200)
	byHeader := b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key", header: map[string]string{"X-Organization-ID": a.orgID}}, 200)
	if string(byQuery.Raw) != string(byHeader.Raw) || strings.TrimSpace(string(byQuery.Raw)) != keys[0]["public_key"] {
		t.Errorf("ca-public-key %q / %q", byQuery.Raw, byHeader.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key?organization_id=" + uuid.NewString()}, 404)
	b.expect(req{method: "GET", path: "/v1/ssh/krl?organization_id=" + uuid.NewString()}, 404)
	b.expect(req{method: "GET", path: "/v1/ssh/krl?organization_id=nope"}, 400)
	b.expect(req{method: "GET", path: "/v1/ssh/krl"}, 400)
	krl := b.expect(req{method: "GET", path: "/v1/ssh/krl?organization_id=" + a.orgID}, 200)
	if !bytes.HasPrefix(krl.Raw, []byte("SSHKRL\n\x00")) {
		t.Errorf("KRL %q", krl.Raw)
	}
	kh := b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + a.orgID}, 200)
	if !strings.HasPrefix(string(kh.Raw), "@cert-authority * ssh-ed25519 ") || strings.Count(string(kh.Raw), "\n") != 1 {
		t.Errorf("known-hosts %q", kh.Raw)
	}
	otherKH := b.expect(req{method: "GET", path: "/v1/ssh/known-hosts", header: map[string]string{"X-Organization-ID": other.orgID}}, 200)
	if string(otherKH.Raw) == string(kh.Raw) {
		t.Error("organizations share a host CA")
	}
	b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + uuid.NewString()}, 404)

	// The owner revokes; the audit log names it.
	b.expect(req{method: "POST", path: "/v1/ssh/certificates/" + id + "/revoke", token: a.access}, 200)
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/ssh/certificates/:id/revoke' AND target = $1", id); n != 1 {
		t.Errorf("audit entries for the revocation: %d", n)
	}
}

// TestSSHSignConcurrent: concurrent requests get distinct serials.
func TestSSHSignConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	key := newUserKey(t, t.TempDir(), "id").public
	const n = 20
	serials := make(chan float64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := httpPost(t, base+"/v1/ssh/certificate", a.access, map[string]any{"public_key": key, "principals": []string{"root"}})
			s, _ := r["serial_number"].(float64)
			serials <- s
		})
	}
	wg.Wait()
	close(serials)
	seen := map[float64]bool{}
	for s := range serials {
		if seen[s] {
			t.Errorf("serial %v issued twice", s)
		}
		seen[s] = true
	}
	if len(seen) != n {
		t.Errorf("%d serials", len(seen))
	}
}

func httpPost(t *testing.T, url, token string, body any) map[string]any {
	t.Helper()
	buf, _ := json.Marshal(body)
	hr, _ := http.NewRequest("POST", url, bytes.NewReader(buf))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Errorf("POST %s: %d %v %v", url, resp.StatusCode, out, err)
	}
	return out
}
