package sshca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
)

// KeyAlgorithm names the algorithm of a CA key.
type KeyAlgorithm string

// CA key algorithms. Vault.Generate makes Ed25519 (the default), ECDSAP256
// and ECDSAP384 keys; ECDSAP521 and RSA (3072 bits or more) CA keys can be
// imported with Vault.Seal or come from a KMS as a crypto.Signer.
const (
	Ed25519   KeyAlgorithm = "ed25519"
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	ECDSAP521 KeyAlgorithm = "ecdsa-p521"
	RSA       KeyAlgorithm = "rsa"
)

// minRSABits is the smallest RSA modulus accepted, for CA and user keys.
const minRSABits = 3072

// CAKey is one CA key pair as the store keeps it: the public half in clear,
// the private half sealed under the master key and bound to ID, so a sealed
// key copied to another row does not open. Vault makes and opens CAKeys.
type CAKey struct {
	// ID identifies the key; it is the seal context ("sshca:<ID>") and must
	// not change after the key is sealed.
	ID        string
	Algorithm KeyAlgorithm
	// PublicKey is the public key in authorized_keys form without a trailing
	// newline: one line of a node's TrustedUserCAKeys file.
	PublicKey string
	// Fingerprint is the SHA256 fingerprint of the public key ("SHA256:…"),
	// as ssh-keygen -l prints it.
	Fingerprint string
	// SealedPrivateKey is the PKCS#8 private key sealed by seal.Sealer.
	SealedPrivateKey []byte
}

// SSHPublicKey parses PublicKey, for example to list the key in a KRL.
func (k *CAKey) SSHPublicKey() (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("parse public key of CA key %s: %w", k.ID, err)
	}
	return pub, nil
}

// sealContext binds a sealed private key to its CA key id.
func sealContext(id string) string { return "sshca:" + id }

// generateKey makes a new private key of the algorithm; "" means Ed25519.
func generateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case "", Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return priv, nil
	case ECDSAP256, ECDSAP384:
		curve := elliptic.P256()
		if alg == ECDSAP384 {
			curve = elliptic.P384()
		}
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", alg, err)
		}
		return priv, nil
	default:
		return nil, domain.Invalid("algorithm", "must be one of %s, %s, %s", Ed25519, ECDSAP256, ECDSAP384)
	}
}

// caAlgorithm names the algorithm of a CA public key, refusing keys a CA must
// not use (short RSA, unknown types).
func caAlgorithm(pub crypto.PublicKey) (KeyAlgorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return Ed25519, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		case elliptic.P521():
			return ECDSAP521, nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA CA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return RSA, nil
	default:
		return "", fmt.Errorf("unsupported CA key type %T", pub)
	}
}

// authorizedKey returns pub in authorized_keys form without the newline.
func authorizedKey(pub ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
}
