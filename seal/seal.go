// Package seal encrypts secrets at rest (TOTP secrets, cloud credentials,
// CA private keys) with AES-256-GCM under keys derived from the master key.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the length of the master key in bytes.
const KeySize = 32

const version byte = 1

// ErrOpen is returned when a sealed value cannot be decrypted: wrong master
// key, tampered data, or data sealed for another context.
var ErrOpen = errors.New("seal: cannot open sealed value (wrong master key or corrupted data)")

// Sealer encrypts and decrypts small secrets. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a Sealer for the 32-byte master key.
func New(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != KeySize {
		return nil, fmt.Errorf("seal: master key must be %d bytes, got %d", KeySize, len(masterKey))
	}
	key, err := DeriveKey(masterKey, "shardform seal v1")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// DeriveKey derives a 32-byte key for one purpose from the master key (HKDF-SHA256).
func DeriveKey(masterKey []byte, purpose string) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, masterKey, nil, purpose, KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext. context binds the ciphertext to where it is stored
// (for example "mfa:<user id>"): a value copied to another row will not open.
func (s *Sealer) Seal(plaintext []byte, context string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, version)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(context)), nil
}

// Open decrypts a value made by Seal with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// KeyCheck is a value that identifies the master key without revealing it:
// an HMAC-SHA256 of a fixed label under a key derived for this purpose
// alone. The database keeps the first one it sees, so a process started
// with another key can be refused before it seals or opens anything.
func KeyCheck(masterKey []byte) ([]byte, error) {
	if len(masterKey) != KeySize {
		return nil, fmt.Errorf("seal: master key must be %d bytes, got %d", KeySize, len(masterKey))
	}
	key, err := DeriveKey(masterKey, "shardform key check v1")
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("shardform master key check"))
	return m.Sum(nil), nil
}
