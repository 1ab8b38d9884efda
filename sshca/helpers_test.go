package sshca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/seal"
)

// testNow is the fixed clock of the unit tests.
func testNow() time.Time { return time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC) }

func newSealer(t testing.TB, fill byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(bytes.Repeat([]byte{fill}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey makes a private key: "ed25519", "ecdsa-p256", "ecdsa-p384",
// "ecdsa-p521" or "rsa-<bits>".
func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kind {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa-p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ecdsa-p521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "rsa-2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// authorizedKeyOf returns the public half of key in authorized_keys form.
func authorizedKeyOf(t testing.TB, key crypto.Signer) string {
	t.Helper()
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return authorizedKey(pub)
}

func newAuthority(t testing.TB, key crypto.Signer, now func() time.Time) *Authority {
	t.Helper()
	a, err := NewAuthority(key, now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// baseRequest is a valid request for the default policy.
func baseRequest(pub string) Request {
	return Request{
		PublicKey:      pub,
		Principals:     []string{"root"},
		User:           "alice@example.com",
		Username:       "alice",
		OrganizationID: "0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f",
		Serial:         42,
	}
}

func hours(h int) *int { return &h }

// parseCert parses a certificate in authorized_keys form.
func parseCert(t testing.TB, text string) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("parsed %T, want *ssh.Certificate", pub)
	}
	return cert
}

// writeFile writes content to name in dir with mode 0600 and returns its path.
func writeFile(t testing.TB, dir, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePrivateKey writes key as an OpenSSH private key file.
func writePrivateKey(t testing.TB, dir, name string, key crypto.Signer) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, pem.EncodeToMemory(block))
}
