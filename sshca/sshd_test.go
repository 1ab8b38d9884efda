package sshca

import (
	"fmt"
	"os/user"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/internal/sshtest"
)

// trust makes the CA keys the sshd's TrustedUserCAKeys.
func trust(t *testing.T, s *sshtest.SSHD, cas ...*Authority) {
	t.Helper()
	var b strings.Builder
	for _, a := range cas {
		b.WriteString(a.PublicKey() + "\n")
	}
	sshtest.Replace(t, s.TrustedPath, []byte(b.String()))
}

// revoke makes krl the sshd's RevokedKeys.
func revoke(t *testing.T, s *sshtest.SSHD, krl *KRL) {
	t.Helper()
	b, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sshtest.Replace(t, s.KRLPath, b)
}

// TestSSHDLogin logs in to a real sshd with issued certificates: accepted
// from a trusted CA, refused from another organization's CA, for another
// principal, from outside the source address and once revoked by the KRL;
// after a rotation the old key still logs in until it is retired.
func TestSSHDLogin(t *testing.T) {
	t.Parallel()
	current, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := current.Username // tests run as root in CI
	s := sshtest.StartSSHD(t, login, nil)
	dir := t.TempDir()

	orgA := newAuthority(t, newKey(t, "ed25519"), time.Now)
	orgARotated := newAuthority(t, newKey(t, "ecdsa-p256"), time.Now)
	orgB := newAuthority(t, newKey(t, "ed25519"), time.Now)
	trust(t, s, orgARotated, orgA) // active key first, the old one still trusted

	userKey := newKey(t, "ed25519")
	keyPath := writePrivateKey(t, dir, "id_ed25519", userKey)
	issue := func(t *testing.T, a *Authority, serial uint64, principal, forceSource string) string {
		t.Helper()
		policy := DefaultPolicy()
		policy.ForceSourceAddress = forceSource
		req := baseRequest(authorizedKeyOf(t, userKey))
		req.Username = login
		req.Principals = []string{principal}
		req.Serial = serial
		rec, err := a.Sign(policy, req)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, fmt.Sprintf("cert-%s-%d.pub", strings.NewReplacer("/", "_", "+", "-").Replace(a.Fingerprint()[7:]), serial), []byte(rec.AuthorizedKey+"\n"))
	}
	caKey := func(a *Authority) ssh.PublicKey {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}

	active1 := issue(t, orgARotated, 1, login, "")
	active2 := issue(t, orgARotated, 2, login, "127.0.0.0/8")
	old1 := issue(t, orgA, 1, login, "")
	other1 := issue(t, orgB, 1, login, "")
	wrongPrincipal := issue(t, orgARotated, 3, "shardform", "")
	if login == "shardform" {
		t.Fatal("the test needs a login other than shardform")
	}
	elsewhere := issue(t, orgARotated, 4, login, "192.0.2.0/24")

	steps := []struct {
		name    string
		before  func(t *testing.T)
		cert    string
		wantIn  bool
		wantLog string // what sshd logs for the refusal
	}{
		{name: "active CA", cert: active1, wantIn: true},
		{name: "active CA, inside source address", cert: active2, wantIn: true},
		{name: "old CA still trusted after rotation", cert: old1, wantIn: true},
		{name: "other organization's CA", cert: other1, wantLog: "(serial 1) CA ED25519 " + orgB.Fingerprint()},
		{name: "principal is not the login", cert: wrongPrincipal, wantLog: "name is not a listed principal"},
		{name: "outside source address", cert: elsewhere, wantLog: "not from a permitted source address"},
		{
			name: "revoked by the KRL",
			before: func(t *testing.T) {
				revoke(t, s, &KRL{Version: 1, GeneratedAt: time.Now(), Revoked: []RevokedSerials{
					{CA: caKey(orgARotated), Serials: []uint64{1}},
				}})
				out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", s.KRLPath, active1)
				if code != 1 || !strings.HasSuffix(out, ": REVOKED\n") {
					t.Errorf("ssh-keygen -Q: exit %d %q, want REVOKED", code, out)
				}
			},
			cert:    active1,
			wantLog: "revoked by file " + s.KRLPath,
		},
		{name: "not revoked, same CA", cert: active2, wantIn: true},
		{name: "same serial of the old CA not revoked", cert: old1, wantIn: true},
		{name: "old CA retired", before: func(t *testing.T) { trust(t, s, orgARotated) }, cert: old1, wantLog: "(serial 1) CA ED25519 " + orgA.Fingerprint()},
		{name: "active CA after retirement", cert: active2, wantIn: true},
	}
	// The steps share one sshd whose files they change: run in order.
	for _, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			if step.before != nil {
				step.before(t)
			}
			logStart := len(s.Log.String())
			in, out := s.Login(t, login, keyPath, step.cert)
			if in != step.wantIn {
				t.Errorf("logged in %v, want %v; ssh said: %s", in, step.wantIn, out)
			}
			if !in && !strings.Contains(out, "Permission denied") {
				t.Errorf("refused without \"Permission denied\": %s", out)
			}
			if step.wantLog != "" && !s.WaitLog(logStart, step.wantLog) {
				t.Errorf("sshd did not log %q for the refusal; it logged:\n%s", step.wantLog, s.Log.String()[logStart:])
			}
		})
		if !ok {
			break
		}
	}

	// sshd logs the key id, so its log names who logged in.
	if log := s.Log.String(); !strings.Contains(log, "ID user=alice@example.com org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=2 (serial 2)") {
		t.Errorf("sshd log does not name the key id:\n%s", log)
	}
}
