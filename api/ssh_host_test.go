package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/internal/sshtest"
)

// addNode registers a node of org directly (as a provision request would).
func (b *bundle) addNode(org, name, ipv4, ipv6 string) string {
	b.t.Helper()
	var id string
	err := b.pool.QueryRow(context.Background(), `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, ipv4, ipv6)
		VALUES ($1, $2, 'local', 'local', 'local-small', 1, 512, 10, $3, $4) RETURNING id`, org, name, ipv4, ipv6).Scan(&id)
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// TestSSHHostCertificate: an admin signs a node's host key with the
// organization's host CA; a real ssh whose only known_hosts is the API's
// known-hosts file connects with StrictHostKeyChecking=yes to the sshd
// presenting that certificate, and refuses it with another organization's
// file.
func TestSSHHostCertificate(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	login := currentLogin(t)
	b.allowLogin(a.access, login)
	node := b.addNode(a.orgID, "web-1", "127.0.0.1", "::1")
	dir := t.TempDir()

	var signed response
	s := sshtest.StartSSHD(t, login, func(hostPub string) string {
		signed = b.expect(req{method: "POST", path: "/v1/ssh/host-certificate", token: a.access,
			body: map[string]any{"public_key": hostPub, "node_id": node}}, 200)
		return signed.str("certificate")
	})
	if got := signed.Body["principals"].([]any); len(got) != 3 || got[0] != "web-1" || got[1] != "127.0.0.1" || got[2] != "::1" {
		t.Errorf("principals %v", got)
	}
	if signed.str("node_id") != node || signed.Body["serial_number"] != float64(1) ||
		signed.str("key_id") != fmt.Sprintf("host=web-1 org=%s serial=1", a.orgID) {
		t.Errorf("signed %s", signed.Raw)
	}
	va, _ := time.Parse(time.RFC3339, signed.str("valid_after"))
	vb, _ := time.Parse(time.RFC3339, signed.str("valid_before"))
	if d := vb.Sub(va); d != 30*24*time.Hour+5*time.Minute {
		t.Errorf("validity %v, want 30 days and 5 minutes", d)
	}

	certPath := filepath.Join(dir, "host-cert.pub")
	sshtest.Replace(t, certPath, []byte(signed.str("certificate")+"\n"))
	out, code := sshtest.Run(t, "ssh-keygen", "-L", "-f", certPath)
	if code != 0 || !strings.Contains(out, "host certificate") || !strings.Contains(out, "Signing CA: ED25519 "+signed.str("ca_fingerprint")) {
		t.Errorf("ssh-keygen -L: %d %s", code, out)
	}

	// known-hosts: one @cert-authority line with the host CA the certificate names.
	kh := b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + a.orgID}, 200)
	lines := strings.Split(strings.TrimSpace(string(kh.Raw)), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "@cert-authority * ssh-ed25519 ") {
		t.Fatalf("known-hosts %q", kh.Raw)
	}
	caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimPrefix(lines[0], "@cert-authority * ")))
	if err != nil || ssh.FingerprintSHA256(caPub) != signed.str("ca_fingerprint") {
		t.Errorf("known-hosts key %v: %v", caPub, err)
	}
	// The host CA is not the user CA.
	userCA := b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key?organization_id=" + a.orgID}, 200)
	if strings.Contains(string(userCA.Raw), strings.Fields(lines[0])[3]) {
		t.Error("the host CA key is also a user CA key")
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	sshtest.Replace(t, knownHosts, kh.Raw)
	otherHosts := filepath.Join(dir, "other_known_hosts")
	sshtest.Replace(t, otherHosts, b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + other.orgID}, 200).Raw)
	emptyHosts := filepath.Join(dir, "empty_known_hosts")
	sshtest.Replace(t, emptyHosts, nil)

	// A user certificate to log in with.
	b.sshFiles(s, a.orgID)
	key := newUserKey(t, dir, "id_ed25519")
	_, userCert := b.sign(a.access, key, []string{login}, dir, "id_ed25519-cert.pub")

	tests := []struct {
		name       string
		knownHosts string
		ok         bool
		outHas     string
	}{
		{"organization's host CA", knownHosts, true, ""},
		{"another organization's host CA", otherHosts, false, "Host key verification failed"},
		{"no known hosts", emptyHosts, false, "Host key verification failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, out := s.Connect(t, login, key.path, userCert, tt.knownHosts)
			if ok != tt.ok || !strings.Contains(out, tt.outHas) {
				t.Errorf("connect: ok=%v, want %v; output:\n%s", ok, tt.ok, out)
			}
		})
	}
	// Nothing was written to the known_hosts file: the certificate sufficed.
	if raw, _ := os.ReadFile(knownHosts); string(raw) != string(kh.Raw) {
		t.Errorf("known_hosts changed: %q", raw)
	}

	// The record.
	listed := b.expect(req{method: "GET", path: "/v1/ssh/host-certificates?node=" + node, token: a.access}, 200)
	l := listed.list()
	if len(l) != 1 || l[0]["id"] != signed.str("id") || l[0]["user_id"] != a.userID || l[0]["key_type"] != "ssh-ed25519" ||
		l[0]["certificate"] != signed.str("certificate") || !strings.HasPrefix(l[0]["key_fingerprint"].(string), "SHA256:") {
		t.Errorf("host certificates %s", listed.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/ssh/host-certificate' AND target = $1", signed.str("id")); n != 1 {
		t.Errorf("audit entries: %d", n)
	}

	// The host KRL (RevokedHostKeys): empty while the node exists; once the
	// node is deleted its host certificate is listed, and ssh refuses the
	// host even though the host CA is trusted. Another organization's list
	// stays empty.
	hostKRL := filepath.Join(dir, "host.krl")
	fetchKRL := func(org string) []byte {
		t.Helper()
		return b.expect(req{method: "GET", path: "/v1/ssh/host-krl?organization_id=" + org}, 200).Raw
	}
	sshtest.Replace(t, hostKRL, fetchKRL(a.orgID))
	if ok, out := s.Connect(t, login, key.path, userCert, knownHosts, "-o", "RevokedHostKeys="+hostKRL); !ok {
		t.Fatalf("with the host KRL of a live node: %s", out)
	}
	if _, err := b.pool.Exec(context.Background(), "DELETE FROM nodes WHERE id = $1", node); err != nil {
		t.Fatal(err)
	}
	sshtest.Replace(t, hostKRL, fetchKRL(a.orgID))
	if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", hostKRL, certPath); code == 0 || !strings.Contains(out, "REVOKED") {
		t.Errorf("ssh-keygen -Q of the deleted node's certificate: %d %s", code, out)
	}
	if ok, out := s.Connect(t, login, key.path, userCert, knownHosts, "-o", "RevokedHostKeys="+hostKRL); ok || !strings.Contains(out, "Host key verification failed") {
		t.Errorf("a deleted node's host certificate is still trusted: ok=%v\n%s", ok, out)
	}
	otherKRL := filepath.Join(dir, "other.krl")
	sshtest.Replace(t, otherKRL, fetchKRL(other.orgID))
	if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", otherKRL, certPath); code != 0 {
		t.Errorf("another organization's host KRL lists the certificate: %d %s", code, out)
	}
}

// TestSSHHostCertificateValidation: refused host signing requests answer
// 400/403/404 naming the rule, and nothing is queued or recorded.
func TestSSHHostCertificateValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	node := b.addNode(a.orgID, "web-1", "192.0.2.10", "")
	otherNode := b.addNode(other.orgID, "db-1", "192.0.2.20", "")
	hostKey := newUserKey(t, t.TempDir(), "host").public
	signer := b.apiToken(a, "ssh:sign")
	tests := []struct {
		name   string
		token  string
		body   map[string]any
		status int
		want   string
	}{
		{"no node", a.access, map[string]any{"public_key": hostKey}, 400, "node_id: is required"},
		{"bad node id", a.access, map[string]any{"public_key": hostKey, "node_id": "web-1"}, 400, "node_id: must be a node id"},
		{"unknown node", a.access, map[string]any{"public_key": hostKey, "node_id": uuid.NewString()}, 404, "node not found"},
		{"another organization's node", a.access, map[string]any{"public_key": hostKey, "node_id": otherNode}, 404, "node not found"},
		{"no key", a.access, map[string]any{"node_id": node}, 400, "public_key: is required"},
		{"malformed key", a.access, map[string]any{"public_key": "ssh-ed25519 AAAA", "node_id": node}, 400, "public_key: is not a valid OpenSSH public key"},
		{"DSA key", a.access, map[string]any{"public_key": dsaKey(t), "node_id": node}, 400, "public_key: DSA keys are not accepted"},
		{"zero validity", a.access, map[string]any{"public_key": hostKey, "node_id": node, "validity_hours": 0}, 400, "validity_hours: must be positive"},
		{"over a year", a.access, map[string]any{"public_key": hostKey, "node_id": node, "validity_hours": 8761}, 400, "validity_hours: must be at most 8760"},
		{"unknown field", a.access, map[string]any{"public_key": hostKey, "node_id": node, "principals": []string{"x"}}, 400, "principals: unknown field"},
		{"without ssh:admin", signer, map[string]any{"public_key": hostKey, "node_id": node}, 403, "ssh:admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(req{method: "POST", path: "/v1/ssh/host-certificate", token: tt.token, body: tt.body})
			if r.Status != tt.status || !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("got %d %q, want %d containing %q", r.Status, r.errMsg(), tt.status, tt.want)
			}
		})
	}
	b.expect(req{method: "GET", path: "/v1/ssh/host-certificates", token: signer}, 403)
	b.expect(req{method: "GET", path: "/v1/ssh/host-certificates?node=x", token: a.access}, 400)
	if n := b.count("SELECT count(*) FROM ssh_host_certificates"); n != 0 {
		t.Errorf("%d host certificates recorded for refused requests", n)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'ssh_sign_host'"); n != 0 {
		t.Errorf("%d ssh_sign_host jobs queued for refused requests", n)
	}

	// A node with only an IPv4 address; its certificate names both.
	r := b.expect(req{method: "POST", path: "/v1/ssh/host-certificate", token: a.access, body: map[string]any{"public_key": hostKey, "node_id": node, "validity_hours": 24}}, 200)
	cert := parsePub(t, r.str("certificate")).(*ssh.Certificate)
	if cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"web-1", "192.0.2.10"}) || cert.ValidBefore-cert.ValidAfter != uint64((24*time.Hour+5*time.Minute)/time.Second) {
		t.Errorf("host certificate %+v", cert)
	}
	// The other organization sees none of it.
	if l := b.expect(req{method: "GET", path: "/v1/ssh/host-certificates", token: other.access}, 200).list(); len(l) != 0 {
		t.Errorf("other organization lists %v", l)
	}
}

// TestSSHHostCARotation: after a rotation the new host CA key signs and
// both keys are in known-hosts, so a real ssh trusts hosts certified by
// either; once the old key is retired, known-hosts drops it and ssh refuses
// the host it certified while still trusting the new key's.
func TestSSHHostCARotation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	login := currentLogin(t)
	b.allowLogin(a.access, login)
	node := b.addNode(a.orgID, "web-1", "127.0.0.1", "::1")
	dir := t.TempDir()
	hostCert := func(fingerprint *string) func(string) string {
		return func(hostPub string) string {
			r := b.expect(req{method: "POST", path: "/v1/ssh/host-certificate", token: a.access,
				body: map[string]any{"public_key": hostPub, "node_id": node}}, 200)
			*fingerprint = r.str("ca_fingerprint")
			return r.str("certificate")
		}
	}
	var oldFP, newFP string
	oldHost := sshtest.StartSSHD(t, login, hostCert(&oldFP))
	b.sshFiles(oldHost, a.orgID)
	key := newUserKey(t, dir, "id_ed25519")
	_, userCert := b.sign(a.access, key, []string{login}, dir, "id_ed25519-cert.pub")

	rotated := b.expect(req{method: "POST", path: "/v1/ssh/host-ca/keys/rotate", token: a.access}, 201)
	if rotated.str("fingerprint") == oldFP || rotated.Body["signing"] != true || rotated.str("algorithm") != "ed25519" {
		t.Fatalf("rotated %s (old key %s)", rotated.Raw, oldFP)
	}
	newHost := sshtest.StartSSHD(t, login, hostCert(&newFP))
	b.sshFiles(newHost, a.orgID)
	if newFP != rotated.str("fingerprint") {
		t.Errorf("the new host certificate is signed by %s, want the new key %s", newFP, rotated.str("fingerprint"))
	}
	keys := b.expect(req{method: "GET", path: "/v1/ssh/host-ca/keys", token: a.access}, 200).list()
	if len(keys) != 2 || keys[0]["fingerprint"] != newFP || keys[0]["signing"] != true || keys[1]["fingerprint"] != oldFP ||
		keys[1]["signing"] != false || keys[1]["status"] != "active" {
		t.Fatalf("host CA keys %v", keys)
	}

	knownHosts := filepath.Join(dir, "known_hosts")
	fetch := func() []string {
		kh := b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + a.orgID}, 200)
		sshtest.Replace(t, knownHosts, kh.Raw)
		return strings.Split(strings.TrimSpace(string(kh.Raw)), "\n")
	}
	check := func(stage string, s *sshtest.SSHD, want bool) {
		t.Helper()
		if ok, out := s.Connect(t, login, key.path, userCert, knownHosts); ok != want {
			t.Errorf("%s: connect ok=%v, want %v:\n%s", stage, ok, want, out)
		}
	}
	if lines := fetch(); len(lines) != 2 || !strings.Contains(lines[0], rotated.str("public_key")) {
		t.Fatalf("known-hosts after rotation: %q", lines)
	}
	check("after rotation, host of the old key", oldHost, true)
	check("after rotation, host of the new key", newHost, true)

	signer := b.apiToken(a, "ssh:sign")
	oldID := keys[1]["id"].(string)
	tests := []struct {
		name, token, id string
		status          int
		want            string
	}{
		{"without ssh:admin", signer, oldID, 403, "ssh:admin"},
		{"the signing key", a.access, rotated.str("id"), 409, "rotate first"},
		{"unknown key", a.access, uuid.NewString(), 404, "host CA key not found"},
		{"not an id", a.access, "old", 400, "id: must be a host CA key id: a canonical lowercase UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(req{method: "POST", path: "/v1/ssh/host-ca/keys/" + tt.id + "/retire", token: tt.token})
			if r.Status != tt.status || !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("got %d %q, want %d containing %q", r.Status, r.errMsg(), tt.status, tt.want)
			}
		})
	}
	b.expect(req{method: "GET", path: "/v1/ssh/host-ca/keys", token: signer}, 403)
	b.expect(req{method: "POST", path: "/v1/ssh/host-ca/keys/rotate", token: signer}, 403)

	retired := b.expect(req{method: "POST", path: "/v1/ssh/host-ca/keys/" + oldID + "/retire", token: a.access}, 200)
	if retired.str("status") != "retired" || retired.Body["retired_at"] == nil {
		t.Errorf("retired %s", retired.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/ssh/host-ca/keys/" + oldID + "/retire", token: a.access}, 409)
	if lines := fetch(); len(lines) != 1 || !strings.Contains(lines[0], rotated.str("public_key")) {
		t.Fatalf("known-hosts after retirement: %q", lines)
	}
	check("after retirement, host of the old key", oldHost, false)
	check("after retirement, host of the new key", newHost, true)
	// The retired key signs nothing more.
	r := b.expect(req{method: "POST", path: "/v1/ssh/host-certificate", token: a.access,
		body: map[string]any{"public_key": newUserKey(t, dir, "host2").public, "node_id": node}}, 200)
	if r.str("ca_fingerprint") != newFP {
		t.Errorf("signed by %s after retirement, want %s", r.str("ca_fingerprint"), newFP)
	}
}

// TestSSHHostCertificateNamesDNS: a node's host certificate carries its DNS
// names (its A and AAAA records, not those being deleted) beside its name
// and addresses, so `ssh root@<fqdn>` matches the certificate.
func TestSSHHostCertificateNamesDNS(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	node := b.addNode(a.orgID, "mc-1", "192.0.2.10", "")
	for _, r := range []struct{ typ, name, content, status string }{
		{"A", "mc-1.nodes.example.com", "192.0.2.10", "synced"},
		{"AAAA", "mc-1.nodes.example.com", "2001:db8::10", "synced"},
		{"A", "play.example.com", "192.0.2.10", "pending"},
		{"A", "old.example.com", "192.0.2.10", "deleted"},
		{"TXT", "txt.example.com", "hello", "synced"},
	} {
		if _, err := b.pool.Exec(t.Context(), `INSERT INTO dns_records (organization_id, zone_id, zone_name, type, name, content, node_id, status)
			VALUES ($1, 'z1', 'example.com', $2, $3, $4, $5, $6)`, a.orgID, r.typ, r.name, r.content, node, r.status); err != nil {
			t.Fatal(err)
		}
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signed := b.expect(req{method: "POST", path: "/v1/ssh/host-certificate", token: a.access,
		body: map[string]any{"public_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), "node_id": node}}, 200)
	got := signed.Body["principals"].([]any)
	want := []any{"mc-1", "mc-1.nodes.example.com", "play.example.com", "192.0.2.10"}
	if !slices.Equal(got, want) {
		t.Errorf("principals %v, want %v", got, want)
	}
}
