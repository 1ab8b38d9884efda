package sshca

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shardform/shardform/internal/sshtest"

	"golang.org/x/crypto/ssh"
)

// TestSignReadBySSHKeygen checks with ssh-keygen -L that OpenSSH reads each
// issued certificate with the expected type, signing CA and algorithm, key
// id, serial, validity, principals, critical options and extensions.
func TestSignReadBySSHKeygen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		caKind, userKind string
		caName, using    string // how ssh-keygen names the CA key and signature
		userName         string // and the user key
		policy           func(*Policy)
		request          func(*Request)
		principals       []string
		critical         []string
		extensions       []string
		valid            string
	}{
		{
			caKind: "ed25519", userKind: "ed25519", caName: "ED25519", using: "ssh-ed25519", userName: "ED25519",
			principals: []string{"root"},
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			valid:      "from 2031-05-06T07:03:09 to 2031-05-06T15:08:09",
		},
		{
			caKind: "ecdsa-p384", userKind: "ecdsa-p521", caName: "ECDSA", using: "ecdsa-sha2-nistp384", userName: "ECDSA",
			policy:     func(p *Policy) { p.ForceSourceAddress = "192.0.2.0/24"; p.Extensions = []string{ExtPermitPTY} },
			request:    func(r *Request) { r.Principals = []string{"shardform", "alice"}; r.ValidityHours = hours(24) },
			principals: []string{"shardform", "alice"},
			critical:   []string{"source-address 192.0.2.0/24"},
			extensions: []string{"permit-pty"},
			valid:      "from 2031-05-06T07:03:09 to 2031-05-07T07:08:09",
		},
		{
			caKind: "rsa-3072", userKind: "rsa-3072", caName: "RSA", using: "rsa-sha2-512", userName: "RSA",
			request:    func(r *Request) { r.ValidityHours = hours(1) },
			principals: []string{"root"},
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			valid:      "from 2031-05-06T07:03:09 to 2031-05-06T08:08:09",
		},
	}
	for _, tt := range tests {
		t.Run(tt.caKind+"_ca_"+tt.userKind+"_user", func(t *testing.T) {
			t.Parallel()
			a := newAuthority(t, newKey(t, tt.caKind), testNow)
			userKey := newKey(t, tt.userKind)
			policy := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&policy)
			}
			req := baseRequest(authorizedKeyOf(t, userKey))
			if tt.request != nil {
				tt.request(&req)
			}
			rec, err := a.Sign(policy, req)
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, t.TempDir(), "id-cert.pub", []byte(rec.AuthorizedKey+"\n"))
			out, code := sshtest.Run(t, "ssh-keygen", "-L", "-f", path)
			if code != 0 {
				t.Fatalf("ssh-keygen -L exit %d: %s", code, out)
			}

			userPub, err := ssh.NewPublicKey(userKey.Public())
			if err != nil {
				t.Fatal(err)
			}
			block := func(items []string) string {
				if len(items) == 0 {
					return " (none)\n"
				}
				return " \n                " + strings.Join(items, "\n                ") + "\n"
			}
			want := fmt.Sprintf("%s:\n"+
				"        Type: %s-cert-v01@openssh.com user certificate\n"+
				"        Public key: %s-CERT %s\n"+
				"        Signing CA: %s %s (using %s)\n"+
				"        Key ID: \"user=alice@example.com org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=42\"\n"+
				"        Serial: 42\n"+
				"        Valid: %s\n"+
				"        Principals:%s"+
				"        Critical Options:%s"+
				"        Extensions:%s",
				path, userPub.Type(), tt.userName, rec.KeyFingerprint,
				tt.caName, a.Fingerprint(), tt.using, tt.valid,
				block(tt.principals), block(tt.critical), block(tt.extensions))
			if out != want {
				t.Errorf("ssh-keygen -L:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// TestKRLRevokesWithSSHKeygen checks with ssh-keygen -Q that certificates
// whose serials the KRL lists under their CA are REVOKED and the others ok:
// the same serial from another CA is not revoked.
func TestKRLRevokesWithSSHKeygen(t *testing.T) {
	t.Parallel()
	caA := newAuthority(t, newKey(t, "ed25519"), testNow)
	caB := newAuthority(t, newKey(t, "ecdsa-p256"), testNow)
	userPub := authorizedKeyOf(t, newKey(t, "ed25519"))

	issue := func(t *testing.T, a *Authority, serial uint64) string {
		t.Helper()
		req := baseRequest(userPub)
		req.Serial = serial
		rec, err := a.Sign(DefaultPolicy(), req)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, t.TempDir(), "id-cert.pub", []byte(rec.AuthorizedKey+"\n"))
	}
	caPub := func(a *Authority) ssh.PublicKey {
		t.Helper()
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}

	krl := &KRL{Version: 3, GeneratedAt: testNow(), Revoked: []RevokedSerials{
		{CA: caPub(caA), Serials: []uint64{2, 3, 4, 6}}, // 2-4 becomes a range
		{CA: caPub(caB), Serials: []uint64{1}},
	}}
	b, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	krlPath := writeFile(t, t.TempDir(), "krl", b)

	tests := []struct {
		name    string
		ca      *Authority
		serial  uint64
		revoked bool
	}{
		{"A serial 1", caA, 1, false},
		{"A serial 2 (range start)", caA, 2, true},
		{"A serial 3 (range)", caA, 3, true},
		{"A serial 4 (range end)", caA, 4, true},
		{"A serial 5", caA, 5, false},
		{"A serial 6 (list)", caA, 6, true},
		{"A serial 7", caA, 7, false},
		{"B serial 1", caB, 1, true},
		{"B serial 2 (revoked for A only)", caB, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert := issue(t, tt.ca, tt.serial)
			out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", krlPath, cert)
			want, wantCode := ": ok\n", 0
			if tt.revoked {
				want, wantCode = ": REVOKED\n", 1
			}
			if !strings.HasSuffix(out, want) || code != wantCode {
				t.Errorf("ssh-keygen -Q: exit %d %q, want exit %d and a line ending %q", code, out, wantCode, want)
			}
		})
	}
}
