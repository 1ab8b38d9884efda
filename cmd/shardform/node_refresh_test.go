package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestNeedsRenewal: node refresh renews a host certificate when less than
// a third of its validity is left, when it expired, when it certifies
// another key or names other principals, and when there is none.
func TestNeedsRenewal(t *testing.T) {
	t.Parallel()
	newKey := func() (ssh.PublicKey, ssh.Signer) {
		t.Helper()
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return k, s
	}
	_, ca := newKey()
	host, _ := newKey()
	other, _ := newKey()
	hostLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(host)))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	// cert writes a host certificate of key valid from now-elapsed for
	// validity, and answers its path.
	cert := func(name string, key ssh.PublicKey, elapsed, validity time.Duration, principals ...string) string {
		t.Helper()
		after := now.Add(-elapsed)
		c := &ssh.Certificate{Key: key, CertType: ssh.HostCert, KeyId: name, ValidPrincipals: principals,
			ValidAfter: uint64(after.Unix()), ValidBefore: uint64(after.Add(validity).Unix())}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+"-cert.pub")
		if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := filepath.Join(dir, "garbage-cert.pub")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		file       string
		principals []string // the heartbeat's (nil: not compared)
		want       bool
	}{
		{"two thirds left", cert("two-thirds", host, time.Hour, 3*time.Hour), nil, false},
		{"just over a third left", cert("over-third", host, 119*time.Minute, 3*time.Hour), nil, false},
		{"a quarter left", cert("quarter", host, 3*time.Hour, 4*time.Hour), nil, true},
		{"expired", cert("expired", host, 5*time.Hour, 4*time.Hour), nil, true},
		{"another key", cert("other-key", other, time.Hour, 3*time.Hour), nil, true},
		{"same principals", cert("same", host, time.Hour, 3*time.Hour, "metal-1", "192.0.2.10"), []string{"192.0.2.10", "metal-1"}, false},
		{"other principals", cert("moved", host, time.Hour, 3*time.Hour, "metal-1", "192.0.2.10"), []string{"metal-1", "192.0.2.99"}, true},
		{"no certificate", filepath.Join(dir, "missing-cert.pub"), nil, true},
		{"not a certificate", garbage, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := needsRenewal(tt.file, hostLine, now, tt.principals); got != tt.want {
				t.Errorf("needsRenewal = %v, want %v", got, tt.want)
			}
		})
	}
}
