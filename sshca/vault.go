package sshca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/seal"
)

// Vault generates CA keys and seals and opens their private halves under the
// master key. Private keys leave it only as a crypto.Signer. It is safe for
// concurrent use.
type Vault struct {
	sealer *seal.Sealer
}

// NewVault returns a Vault sealing with sealer.
func NewVault(sealer *seal.Sealer) *Vault {
	return &Vault{sealer: sealer}
}

// Generate makes a new CA key pair with the given id (the store allocates it
// before the key is sealed) and algorithm ("" means Ed25519). An unknown
// algorithm is a *domain.ValidationError on field "algorithm".
func (v *Vault) Generate(id string, alg KeyAlgorithm) (*CAKey, error) {
	if id == "" {
		return nil, errors.New("generate CA key: empty id")
	}
	priv, err := generateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("generate CA key %s: %w", id, err)
	}
	key, err := v.Seal(id, priv)
	if err != nil {
		return nil, fmt.Errorf("generate CA key %s: %w", id, err)
	}
	return key, nil
}

// Seal wraps an existing private key (Ed25519, ECDSA, or RSA of 3072 bits or
// more) as a CAKey with the given id; it is how keys are imported and how
// Generate stores new ones.
func (v *Vault) Seal(id string, priv crypto.Signer) (*CAKey, error) {
	if id == "" {
		return nil, errors.New("seal CA key: empty id")
	}
	alg, err := caAlgorithm(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("seal CA key %s: %w", id, err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("seal CA key %s: %w", id, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("seal CA key %s: marshal: %w", id, err)
	}
	sealed, err := v.sealer.Seal(der, sealContext(id))
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("seal CA key %s: %w", id, err)
	}
	return &CAKey{
		ID:               id,
		Algorithm:        alg,
		PublicKey:        authorizedKey(pub),
		Fingerprint:      ssh.FingerprintSHA256(pub),
		SealedPrivateKey: sealed,
	}, nil
}

// Open unseals the private key of k. It fails with an error wrapping
// seal.ErrOpen if the master key is wrong, the data was tampered with or the
// sealed key belongs to another id, and also if the private key does not
// match k.PublicKey.
func (v *Vault) Open(k *CAKey) (crypto.Signer, error) {
	der, err := v.sealer.Open(k.SealedPrivateKey, sealContext(k.ID))
	if err != nil {
		return nil, fmt.Errorf("open CA key %s: %w", k.ID, err)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("open CA key %s: parse: %w", k.ID, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("open CA key %s: %T is not a crypto.Signer", k.ID, parsed)
	}
	pub, err := ssh.NewPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("open CA key %s: %w", k.ID, err)
	}
	want, err := k.SSHPublicKey()
	if err != nil {
		return nil, fmt.Errorf("open CA key %s: %w", k.ID, err)
	}
	if !bytes.Equal(pub.Marshal(), want.Marshal()) {
		return nil, fmt.Errorf("open CA key %s: private key does not match the public key", k.ID)
	}
	return signer, nil
}
