package sshca

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shardform/shardform/domain"
)

// User key types, as OpenSSH names them.
const (
	KeyTypeEd25519   = "ssh-ed25519"
	KeyTypeECDSAP256 = "ecdsa-sha2-nistp256"
	KeyTypeECDSAP384 = "ecdsa-sha2-nistp384"
	KeyTypeECDSAP521 = "ecdsa-sha2-nistp521"
	KeyTypeRSA       = "ssh-rsa" // 3072 bits or more
)

// Certificate extensions OpenSSH knows.
const (
	ExtPermitX11Forwarding   = "permit-X11-forwarding"
	ExtPermitAgentForwarding = "permit-agent-forwarding"
	ExtPermitPortForwarding  = "permit-port-forwarding"
	ExtPermitPTY             = "permit-pty"
	ExtPermitUserRC          = "permit-user-rc"
	ExtNoTouchRequired       = "no-touch-required"
)

// Policy limits.
const (
	DefaultValidityHours    = 8
	DefaultMaxValidityHours = 24
	// MaxValidityHours bounds every user certificate's validity and every
	// policy's maximum: one year. Above about 2.5 million hours a Go
	// duration overflows; long before that a user certificate stops being
	// short-lived.
	MaxValidityHours = 365 * 24
	// MaxPrincipals is the most principals one certificate may carry.
	MaxPrincipals = 64
	// maxPrincipalLen bounds one principal (Linux user names are far shorter).
	maxPrincipalLen = 255
)

// SupportedKeyTypes returns the user key types the CA signs at all; a
// policy may narrow them but not widen them.
func SupportedKeyTypes() []string {
	return []string{KeyTypeEd25519, KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeECDSAP521, KeyTypeRSA}
}

// KnownExtensions returns the certificate extensions a policy may grant.
func KnownExtensions() []string {
	return []string{
		ExtPermitX11Forwarding, ExtPermitAgentForwarding, ExtPermitPortForwarding,
		ExtPermitPTY, ExtPermitUserRC, ExtNoTouchRequired,
	}
}

// Policy is an organization's signing policy. The store returns
// DefaultPolicy for an organization that has not set one; PUT /v1/ssh/policy
// checks a new one with Validate.
type Policy struct {
	// AllowedPrincipals may be requested by any member; a member may always
	// request their own username as well.
	AllowedPrincipals []string `json:"allowed_principals"`
	// DefaultValidityHours applies when a request names no validity.
	DefaultValidityHours int `json:"default_validity_hours"`
	// MaxValidityHours is the longest validity a request may ask for.
	MaxValidityHours int `json:"max_validity_hours"`
	// AllowedKeyTypes lists the user key types signed (KeyType* constants).
	AllowedKeyTypes []string `json:"allowed_key_types"`
	// Extensions are granted to every certificate (Ext* constants).
	Extensions []string `json:"extensions"`
	// ForceSourceAddress, when set, is a comma-separated list of addresses
	// or CIDR networks put in every certificate's source-address critical
	// option; a request may only narrow it.
	ForceSourceAddress string `json:"force_source_address,omitempty"`
}

// DefaultPolicy returns the policy of an organization that has not set one:
// principals root and shardform, 8 hours by default and 24 at most, every
// supported key type, and the extensions permit-pty, permit-agent-forwarding
// and permit-port-forwarding.
func DefaultPolicy() Policy {
	return Policy{
		AllowedPrincipals:    []string{"root", "shardform"},
		DefaultValidityHours: DefaultValidityHours,
		MaxValidityHours:     DefaultMaxValidityHours,
		AllowedKeyTypes:      SupportedKeyTypes(),
		Extensions:           []string{ExtPermitPTY, ExtPermitAgentForwarding, ExtPermitPortForwarding},
	}
}

// Validate reports the first broken rule of p as a *domain.ValidationError
// whose field is the JSON name of the policy field.
func (p Policy) Validate() error {
	for _, principal := range p.AllowedPrincipals {
		if err := checkPrincipal(principal); err != nil {
			return domain.Invalid("allowed_principals", "%q: %s", principal, err)
		}
	}
	if p.MaxValidityHours <= 0 || p.MaxValidityHours > MaxValidityHours {
		return domain.Invalid("max_validity_hours", "must be between 1 and %d (one year)", MaxValidityHours)
	}
	if p.DefaultValidityHours <= 0 || p.DefaultValidityHours > p.MaxValidityHours {
		return domain.Invalid("default_validity_hours", "must be between 1 and max_validity_hours (%d)", p.MaxValidityHours)
	}
	if len(p.AllowedKeyTypes) == 0 {
		return domain.Invalid("allowed_key_types", "must name at least one key type")
	}
	supported := SupportedKeyTypes()
	for _, kt := range p.AllowedKeyTypes {
		if !slices.Contains(supported, kt) {
			return domain.Invalid("allowed_key_types", "%q is not one of %s", kt, strings.Join(supported, ", "))
		}
	}
	known := KnownExtensions()
	for _, ext := range p.Extensions {
		if !slices.Contains(known, ext) {
			return domain.Invalid("extensions", "%q is not one of %s", ext, strings.Join(known, ", "))
		}
	}
	if p.ForceSourceAddress != "" {
		if _, err := parseSourceAddress(p.ForceSourceAddress); err != nil {
			return domain.Invalid("force_source_address", "%s", err)
		}
	}
	return nil
}

// Bounded returns p with its validity hours within the bounds Validate
// enforces: a policy stored before those bounds existed is applied as if its
// maximum (and its default) were at most MaxValidityHours.
func (p Policy) Bounded() Policy {
	p.MaxValidityHours = min(p.MaxValidityHours, MaxValidityHours)
	p.DefaultValidityHours = min(p.DefaultValidityHours, p.MaxValidityHours)
	return p
}

// allowsPrincipal reports whether principal may be requested by the user
// whose own login name is own.
func (p Policy) allowsPrincipal(principal, own string) bool {
	return (own != "" && principal == own) || slices.Contains(p.AllowedPrincipals, principal)
}

// checkPrincipal checks the form of one principal.
func checkPrincipal(principal string) error {
	switch {
	case principal == "":
		return errors.New("a principal must not be empty")
	case len(principal) > maxPrincipalLen:
		return fmt.Errorf("a principal must be at most %d bytes", maxPrincipalLen)
	case strings.ContainsFunc(principal, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f }):
		return errors.New("a principal must not contain spaces, commas or control characters")
	}
	return nil
}
