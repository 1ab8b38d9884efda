package sshca

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Backdate is how far before the signing time a certificate becomes valid,
// to tolerate clocks that run behind.
const Backdate = 5 * time.Minute

// Authority signs user certificates with one CA key. It is safe for
// concurrent use if its crypto.Signer is.
type Authority struct {
	signer      ssh.Signer
	authorized  string
	fingerprint string
	now         func() time.Time
}

// NewAuthority returns an Authority signing with key: a key from
// Vault.Open, or a KMS or HSM behind crypto.Signer. Ed25519, ECDSA and RSA
// keys of 3072 bits or more are accepted; an RSA CA signs with rsa-sha2-512.
// now is the clock (time.Now if nil).
func NewAuthority(key crypto.Signer, now func() time.Time) (*Authority, error) {
	if key == nil {
		return nil, errors.New("new authority: nil key")
	}
	alg, err := caAlgorithm(key.Public())
	if err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	if alg == RSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("new authority: RSA signer cannot choose its algorithm")
		}
		// Never ssh-rsa (SHA-1): OpenSSH refuses such certificates.
		if signer, err = ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512}); err != nil {
			return nil, fmt.Errorf("new authority: %w", err)
		}
	}
	if now == nil {
		now = time.Now
	}
	pub := signer.PublicKey()
	return &Authority{
		signer:      signer,
		authorized:  authorizedKey(pub),
		fingerprint: ssh.FingerprintSHA256(pub),
		now:         now,
	}, nil
}

// PublicKey returns the CA public key in authorized_keys form, without a
// trailing newline.
func (a *Authority) PublicKey() string { return a.authorized }

// Fingerprint returns the SHA256 fingerprint of the CA public key.
func (a *Authority) Fingerprint() string { return a.fingerprint }

// Sign validates req, applies policy, builds the user certificate and signs
// it. Bad input is a *domain.ValidationError, a principal or source address
// the policy forbids a domain.ErrForbidden; any other error (an invalid
// policy, a failing signer) is internal. Nothing is recorded here: the
// caller stores the returned Certificate before handing it out.
func (a *Authority) Sign(policy Policy, req Request) (*Certificate, error) {
	v, err := check(policy, req)
	if err != nil {
		return nil, err
	}
	userKey, principals, hours, source := v.userKey, v.principals, v.hours, v.source

	// Build.
	validAfter, validBefore, err := validity(a.now().UTC().Truncate(time.Second), hours)
	if err != nil {
		return nil, fmt.Errorf("sign certificate serial %d: %w", req.Serial, err)
	}
	extensions := make(map[string]string, len(policy.Extensions))
	for _, ext := range policy.Extensions {
		extensions[ext] = ""
	}
	var critical map[string]string
	if source != "" {
		critical = map[string]string{"source-address": source}
	}
	keyID := fmt.Sprintf("user=%s org=%s serial=%d", keyIDField(req.User), keyIDField(req.OrganizationID), req.Serial)
	cert := &ssh.Certificate{
		Key:             userKey,
		Serial:          req.Serial,
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(validAfter.Unix()),
		ValidBefore:     uint64(validBefore.Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: critical,
			Extensions:      extensions,
		},
	}

	// Sign.
	if err := cert.SignCert(rand.Reader, a.signer); err != nil {
		return nil, fmt.Errorf("sign certificate serial %d: %w", req.Serial, err)
	}

	return &Certificate{
		AuthorizedKey:  authorizedKey(cert),
		Serial:         req.Serial,
		KeyID:          keyID,
		Principals:     principals,
		ValidAfter:     validAfter,
		ValidBefore:    validBefore,
		Extensions:     slices.Sorted(maps.Keys(extensions)),
		SourceAddress:  source,
		KeyType:        userKey.Type(),
		KeyFingerprint: ssh.FingerprintSHA256(userKey),
		CAFingerprint:  a.fingerprint,
	}, nil
}

// Check runs Sign's validation and policy checks on req without signing: the
// same errors Sign would return for it.
func Check(policy Policy, req Request) error {
	_, err := check(policy, req)
	return err
}

// checked is a request that passed validation, with the policy applied.
type checked struct {
	userKey    ssh.PublicKey
	principals []string
	hours      int
	source     string
}

func check(policy Policy, req Request) (checked, error) {
	if err := policy.Validate(); err != nil {
		// The stored policy is broken: not the requester's fault, so the
		// ValidationError is deliberately not wrapped (it would become a 400).
		return checked{}, fmt.Errorf("sign certificate: invalid policy: %v", err)
	}
	if req.Serial == 0 {
		return checked{}, errors.New("sign certificate: serial 0 (the store must allocate serials from 1)")
	}
	if req.User == "" || req.OrganizationID == "" {
		return checked{}, errors.New("sign certificate: request names no user or organization")
	}

	// Validate and apply the policy.
	userKey, err := parseUserKey(req.PublicKey, policy)
	if err != nil {
		return checked{}, err
	}
	principals, err := checkPrincipals(req.Principals, req.Username, policy)
	if err != nil {
		return checked{}, err
	}
	hours, err := validityHours(req.ValidityHours, policy)
	if err != nil {
		return checked{}, err
	}
	source, err := sourceAddress(req.SourceAddress, policy)
	if err != nil {
		return checked{}, err
	}

	return checked{userKey: userKey, principals: principals, hours: hours, source: source}, nil
}

// keyIDField keeps a key id field one word, so sshd's log line stays
// parseable: whitespace and control characters become '_'.
func keyIDField(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}
