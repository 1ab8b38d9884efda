package sshca

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
)

// Host certificate validity, in hours. A host certificate lives much longer
// than a user's: a node renews it (for example from a systemd timer) well
// before it expires.
const (
	DefaultHostValidityHours = 30 * 24
	MaxHostValidityHours     = 365 * 24
)

// HostRequest asks the Authority for a host certificate: the certificate an
// sshd presents (HostCertificate) so that clients trusting the
// organization's host CA (@cert-authority in known_hosts) accept the host
// without a prompt.
type HostRequest struct {
	// PublicKey is the host's public key in authorized_keys form, e.g. the
	// content of /etc/ssh/ssh_host_ed25519_key.pub.
	PublicKey string
	// Principals are the names and addresses clients use to reach the host;
	// ssh checks the name it connected to against them.
	Principals []string
	// ValidityHours is how long the certificate is valid; nil means
	// DefaultHostValidityHours.
	ValidityHours *int

	// Host names the host in the key id (the node's name).
	Host string
	// OrganizationID names the organization in the key id.
	OrganizationID string
	// Serial is the certificate's serial number, unique per CA key; never 0.
	Serial uint64
}

// SignHost validates req and signs an OpenSSH host certificate. Host keys of
// any supported type are accepted (the user policy's key types, principals
// and extensions do not apply: a host certificate carries none). Bad input is
// a *domain.ValidationError (fields public_key, principals, validity_hours);
// any other error is internal.
func (a *Authority) SignHost(req HostRequest) (*Certificate, error) {
	if req.Serial == 0 {
		return nil, errors.New("sign host certificate: serial 0 (the store must allocate serials from 1)")
	}
	if req.Host == "" || req.OrganizationID == "" {
		return nil, errors.New("sign host certificate: request names no host or organization")
	}
	hostKey, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return nil, err
	}
	principals, err := hostPrincipals(req.Principals)
	if err != nil {
		return nil, err
	}
	hours := DefaultHostValidityHours
	if req.ValidityHours != nil {
		hours = *req.ValidityHours
		if hours <= 0 {
			return nil, domain.Invalid("validity_hours", "must be positive")
		}
		if hours > MaxHostValidityHours {
			return nil, domain.Invalid("validity_hours", "must be at most %d (one year) for a host certificate", MaxHostValidityHours)
		}
	}

	validAfter, validBefore, err := validity(a.now().UTC().Truncate(time.Second), hours)
	if err != nil {
		return nil, fmt.Errorf("sign host certificate serial %d: %w", req.Serial, err)
	}
	keyID := fmt.Sprintf("host=%s org=%s serial=%d", keyIDField(req.Host), keyIDField(req.OrganizationID), req.Serial)
	cert := &ssh.Certificate{
		Key:             hostKey,
		Serial:          req.Serial,
		CertType:        ssh.HostCert,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(validAfter.Unix()),
		ValidBefore:     uint64(validBefore.Unix()),
	}
	if err := cert.SignCert(rand.Reader, a.signer); err != nil {
		return nil, fmt.Errorf("sign host certificate serial %d: %w", req.Serial, err)
	}
	return &Certificate{
		AuthorizedKey:  authorizedKey(cert),
		Serial:         req.Serial,
		KeyID:          keyID,
		Principals:     principals,
		ValidAfter:     validAfter,
		ValidBefore:    validBefore,
		Extensions:     []string{},
		KeyType:        hostKey.Type(),
		KeyFingerprint: ssh.FingerprintSHA256(hostKey),
		CAFingerprint:  a.fingerprint,
	}, nil
}

// hostPrincipals vets the host names and addresses of a host certificate and
// returns them without duplicates, in order. Wildcards are refused: a
// certificate must name the hosts it is valid for.
func hostPrincipals(principals []string) ([]string, error) {
	if len(principals) == 0 {
		// OpenSSH would accept a host certificate without principals for
		// any host name.
		return nil, domain.Invalid("principals", "must name at least one host name or address")
	}
	if len(principals) > MaxPrincipals {
		return nil, domain.Invalid("principals", "must name at most %d host names or addresses", MaxPrincipals)
	}
	out := make([]string, 0, len(principals))
	for _, p := range principals {
		if err := checkPrincipal(p); err != nil {
			return nil, domain.Invalid("principals", "%s", err)
		}
		if strings.ContainsAny(p, "*?!") {
			return nil, domain.Invalid("principals", "%q: a host principal must not contain wildcards", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
