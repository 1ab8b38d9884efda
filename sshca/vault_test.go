package sshca

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/shardform/shardform/internal/sshtest"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
)

func TestVaultGenerate(t *testing.T) {
	t.Parallel()
	vault := NewVault(newSealer(t, 1))

	tests := []struct {
		alg      KeyAlgorithm
		wantAlg  KeyAlgorithm
		wantType string
	}{
		{"", Ed25519, ssh.KeyAlgoED25519},
		{Ed25519, Ed25519, ssh.KeyAlgoED25519},
		{ECDSAP256, ECDSAP256, ssh.KeyAlgoECDSA256},
		{ECDSAP384, ECDSAP384, ssh.KeyAlgoECDSA384},
	}
	for _, tt := range tests {
		t.Run("alg="+string(tt.alg), func(t *testing.T) {
			t.Parallel()
			key, err := vault.Generate("key-1", tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			if key.ID != "key-1" || key.Algorithm != tt.wantAlg {
				t.Errorf("got id %q algorithm %q, want key-1 %q", key.ID, key.Algorithm, tt.wantAlg)
			}
			pub, err := key.SSHPublicKey()
			if err != nil {
				t.Fatal(err)
			}
			if pub.Type() != tt.wantType {
				t.Errorf("public key type %s, want %s", pub.Type(), tt.wantType)
			}
			if strings.HasSuffix(key.PublicKey, "\n") {
				t.Errorf("public key %q ends with a newline", key.PublicKey)
			}
			if key.Fingerprint != ssh.FingerprintSHA256(pub) || !strings.HasPrefix(key.Fingerprint, "SHA256:") {
				t.Errorf("fingerprint %q does not match the public key", key.Fingerprint)
			}
			// ssh-keygen computes the same fingerprint.
			out, code := sshtest.Run(t, "ssh-keygen", "-l", "-E", "sha256", "-f", writeFile(t, t.TempDir(), "ca.pub", []byte(key.PublicKey+"\n")))
			if code != 0 || !strings.Contains(out, key.Fingerprint) {
				t.Errorf("ssh-keygen -l (exit %d): %q does not show %s", code, out, key.Fingerprint)
			}
			if bytes.Contains(key.SealedPrivateKey, []byte("PRIVATE KEY")) {
				t.Error("sealed key contains a PEM header")
			}

			signer, err := vault.Open(key)
			if err != nil {
				t.Fatal(err)
			}
			opened, err := ssh.NewPublicKey(signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(opened.Marshal(), pub.Marshal()) {
				t.Error("opened private key does not match the public key")
			}
			// The opened key signs certificates.
			a := newAuthority(t, signer, testNow)
			if a.Fingerprint() != key.Fingerprint || a.PublicKey() != key.PublicKey {
				t.Errorf("authority %s %q, want %s %q", a.Fingerprint(), a.PublicKey(), key.Fingerprint, key.PublicKey)
			}
		})
	}
}

func TestVaultGenerateRejects(t *testing.T) {
	t.Parallel()
	vault := NewVault(newSealer(t, 1))
	for _, alg := range []KeyAlgorithm{"dsa", RSA, ECDSAP521, "ED25519"} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			_, err := vault.Generate("key-1", alg)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) || verr.Field != "algorithm" {
				t.Fatalf("got %v, want a ValidationError on field algorithm", err)
			}
		})
	}
	if _, err := vault.Generate("", Ed25519); err == nil {
		t.Error("empty id: got no error")
	}
}

func TestVaultSeal(t *testing.T) {
	t.Parallel()
	vault := NewVault(newSealer(t, 1))
	tests := []struct {
		kind    string
		wantAlg KeyAlgorithm
		wantErr bool
	}{
		{"ed25519", Ed25519, false},
		{"ecdsa-p521", ECDSAP521, false},
		{"rsa-3072", RSA, false},
		{"rsa-2048", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			priv := newKey(t, tt.kind)
			key, err := vault.Seal("imported", priv)
			if tt.wantErr {
				if err == nil {
					t.Fatal("got no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if key.Algorithm != tt.wantAlg {
				t.Errorf("algorithm %q, want %q", key.Algorithm, tt.wantAlg)
			}
			signer, err := vault.Open(key)
			if err != nil {
				t.Fatal(err)
			}
			if authorizedKeyOf(t, signer) != authorizedKeyOf(t, priv) {
				t.Error("opened key differs from the sealed one")
			}
		})
	}
}

func TestVaultOpenFails(t *testing.T) {
	t.Parallel()
	vault := NewVault(newSealer(t, 1))
	key, err := vault.Generate("key-1", Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	other, err := vault.Generate("key-2", Ed25519)
	if err != nil {
		t.Fatal(err)
	}

	copied := *key
	copied.ID = "key-2" // a sealed key copied to another row
	tampered := *key
	tampered.SealedPrivateKey = bytes.Clone(key.SealedPrivateKey)
	tampered.SealedPrivateKey[len(tampered.SealedPrivateKey)-1] ^= 1
	swapped := *key
	swapped.PublicKey = other.PublicKey // public half of another key

	tests := []struct {
		name     string
		vault    *Vault
		key      *CAKey
		wantOpen bool // error wraps seal.ErrOpen
	}{
		{"other id", vault, &copied, true},
		{"other master key", NewVault(newSealer(t, 2)), key, true},
		{"tampered", vault, &tampered, true},
		{"mismatched public key", vault, &swapped, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			signer, err := tt.vault.Open(tt.key)
			if err == nil {
				t.Fatalf("opened %T, want an error", signer)
			}
			if got := errors.Is(err, seal.ErrOpen); got != tt.wantOpen {
				t.Errorf("errors.Is(%v, seal.ErrOpen) = %v, want %v", err, got, tt.wantOpen)
			}
			if !strings.Contains(err.Error(), tt.key.ID) {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
}

func TestNewAuthorityRejects(t *testing.T) {
	t.Parallel()
	if _, err := NewAuthority(nil, nil); err == nil {
		t.Error("nil key: got no error")
	}
	if _, err := NewAuthority(newKey(t, "rsa-2048"), nil); err == nil {
		t.Error("RSA 2048 CA: got no error")
	}
	a, err := NewAuthority(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.now == nil {
		t.Error("nil clock not replaced by time.Now")
	}
}
