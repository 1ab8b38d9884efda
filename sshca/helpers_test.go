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
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// tool returns the path of an OpenSSH program; the tests need real OpenSSH
// (CI installs openssh-client and openssh-server).
func tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		t.Fatalf("%s not found (install openssh-client): %v", name, err)
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// run runs an OpenSSH tool with TZ=UTC and returns its combined output and
// exit code; failing to start it fails the test.
func run(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("run %s %s: %v", name, strings.Join(args, " "), err)
		return "", -1
	}
}
