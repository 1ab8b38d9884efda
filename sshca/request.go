package sshca

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
)

// Request asks the Authority for a user certificate. The first four fields
// come from the caller's request body; the others from the authenticated
// member and the store.
type Request struct {
	// PublicKey is the user's public key in authorized_keys form.
	PublicKey string
	// Principals are the user names the certificate may log in as.
	Principals []string
	// ValidityHours is how long the certificate is valid; nil means the
	// policy's default.
	ValidityHours *int
	// SourceAddress optionally restricts where the certificate may be used
	// from: a comma-separated list of addresses or CIDR networks.
	SourceAddress string

	// User names the requester in the key id, e.g. their e-mail address.
	User string
	// Username is the requester's own login name, always an allowed principal
	// (empty if they have none).
	Username string
	// OrganizationID names the organization in the key id.
	OrganizationID string
	// Serial is the certificate's serial number, unique per CA key and never
	// reused; the store allocates it. Zero is refused: OpenSSH cannot revoke
	// serial 0 in a KRL.
	Serial uint64
}

// parseUserKey parses and vets the user's public key.
func parseUserKey(text string, p Policy) (ssh.PublicKey, error) {
	pub, err := parsePublicKey(text)
	if err != nil {
		return nil, err
	}
	if typ := pub.Type(); !slices.Contains(p.AllowedKeyTypes, typ) {
		return nil, domain.Invalid("public_key", "key type %s is not allowed by the organization's policy (allowed: %s)", typ, strings.Join(p.AllowedKeyTypes, ", "))
	}
	return pub, nil
}

// parsePublicKey parses a public key (field public_key) and vets its type
// and size: ed25519, ECDSA, or RSA of at least 3072 bits.
func parsePublicKey(text string) (ssh.PublicKey, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, domain.Invalid("public_key", "is required")
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		// x/crypto/ssh may refuse some key types outright; name the rule
		// for those rather than calling the key malformed.
		if typ, _, _ := strings.Cut(text, " "); typ == ssh.KeyAlgoDSA {
			return nil, domain.Invalid("public_key", "DSA keys are not accepted; use ed25519, ecdsa or RSA of at least %d bits", minRSABits)
		}
		return nil, domain.Invalid("public_key", "is not a valid OpenSSH public key")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, domain.Invalid("public_key", "must be a single public key")
	}
	typ := pub.Type()
	switch typ {
	case KeyTypeEd25519, KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeECDSAP521:
	case KeyTypeRSA:
		ck, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, domain.Invalid("public_key", "is not a valid RSA key")
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, domain.Invalid("public_key", "is not a valid RSA key")
		}
		if bits := rk.N.BitLen(); bits < minRSABits {
			return nil, domain.Invalid("public_key", "RSA keys must have at least %d bits, this one has %d", minRSABits, bits)
		}
	case ssh.KeyAlgoDSA:
		return nil, domain.Invalid("public_key", "DSA keys are not accepted; use ed25519, ecdsa or RSA of at least %d bits", minRSABits)
	default:
		if _, isCert := pub.(*ssh.Certificate); isCert {
			return nil, domain.Invalid("public_key", "must be a public key, not a certificate")
		}
		return nil, domain.Invalid("public_key", "key type %s is not accepted; use ed25519, ecdsa or RSA of at least %d bits", typ, minRSABits)
	}
	return pub, nil
}

// checkPrincipals vets the requested principals against the form rules and
// the policy, and returns them without duplicates, in request order.
func checkPrincipals(principals []string, own string, p Policy) ([]string, error) {
	if len(principals) == 0 {
		// A certificate without principals is valid for any user.
		return nil, domain.Invalid("principals", "must name at least one principal")
	}
	if len(principals) > MaxPrincipals {
		return nil, domain.Invalid("principals", "must name at most %d principals", MaxPrincipals)
	}
	out := make([]string, 0, len(principals))
	for _, principal := range principals {
		if err := checkPrincipal(principal); err != nil {
			return nil, domain.Invalid("principals", "%s", err)
		}
		if !slices.Contains(out, principal) {
			out = append(out, principal)
		}
	}
	for _, principal := range out {
		if !p.allowsPrincipal(principal, own) {
			return nil, domain.Forbidden("principal %q is not allowed by the organization's SSH policy", principal)
		}
	}
	return out, nil
}

// validityHours returns the requested validity, or the policy's default.
func validityHours(requested *int, p Policy) (int, error) {
	if requested == nil {
		return p.DefaultValidityHours, nil
	}
	h := *requested
	if h <= 0 {
		return 0, domain.Invalid("validity_hours", "must be positive")
	}
	if limit := min(p.MaxValidityHours, MaxValidityHours); h > limit {
		return 0, domain.Invalid("validity_hours", "must be at most %d (the organization's maximum)", limit)
	}
	return h, nil
}

// maxYear is the last year a certificate may end in: RFC 3339 (the
// record's JSON) has four-digit years.
const maxYear = 9999

// validity returns the validity window of a certificate signed at now for
// hours (already checked against its bound): from Backdate before now
// until hours after it. The arithmetic is checked: a window that a Go
// duration, the certificate's unsigned seconds since 1970 or the record (an
// RFC 3339 time, years up to 9999) cannot hold is an error, never a
// wrapped-around date.
func validity(now time.Time, hours int) (after, before time.Time, err error) {
	if hours <= 0 || int64(hours) > math.MaxInt64/int64(time.Hour) {
		return time.Time{}, time.Time{}, fmt.Errorf("validity of %d hours out of range", hours)
	}
	after = now.Add(-Backdate)
	before = now.Add(time.Duration(hours) * time.Hour)
	if after.Unix() < 0 || before.Year() > maxYear || !before.After(now) || before.Sub(now) != time.Duration(hours)*time.Hour {
		return time.Time{}, time.Time{}, fmt.Errorf("validity of %d hours from %s out of range", hours, now.Format(time.RFC3339))
	}
	return after, before, nil
}

// sourceAddress returns the source-address critical option for the
// certificate: the request's value, which must lie inside the policy's forced
// networks if there are any, or else the forced value. "" means none.
func sourceAddress(requested string, p Policy) (string, error) {
	var forced []netip.Prefix
	if p.ForceSourceAddress != "" {
		var err error
		if forced, err = parseSourceAddress(p.ForceSourceAddress); err != nil {
			return "", fmt.Errorf("policy force_source_address: %w", err)
		}
	}
	if strings.TrimSpace(requested) == "" {
		return formatSourceAddress(forced), nil
	}
	asked, err := parseSourceAddress(requested)
	if err != nil {
		return "", domain.Invalid("source_address", "%s", err)
	}
	if forced != nil {
		for _, a := range asked {
			if !slices.ContainsFunc(forced, func(f netip.Prefix) bool { return contains(f, a) }) {
				return "", domain.Forbidden("source address %s is outside the organization's forced source address %s", a, p.ForceSourceAddress)
			}
		}
	}
	return formatSourceAddress(asked), nil
}

// parseSourceAddress parses a comma-separated list of addresses and CIDR
// networks as OpenSSH's source-address option accepts them.
func parseSourceAddress(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, errors.New("must be a comma-separated list of addresses or CIDR networks")
		}
		var prefix netip.Prefix
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR network", item)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%q has host bits set; use %s", item, p.Masked())
			}
			prefix = p
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an IP address", item)
			}
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, prefix)
	}
	return out, nil
}

func formatSourceAddress(prefixes []netip.Prefix) string {
	items := make([]string, len(prefixes))
	for i, p := range prefixes {
		items[i] = p.String()
	}
	return strings.Join(items, ",")
}

// contains reports whether network outer contains all of inner.
func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
