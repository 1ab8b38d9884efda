package sshca

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/shardform/shardform/domain"
)

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("default policy invalid: %v", err)
	}
	if !slices.Equal(p.AllowedPrincipals, []string{"root", "shardform"}) {
		t.Errorf("principals %v", p.AllowedPrincipals)
	}
	if p.DefaultValidityHours != 8 || p.MaxValidityHours != 24 {
		t.Errorf("validity default %d max %d, want 8 and 24", p.DefaultValidityHours, p.MaxValidityHours)
	}
	wantExt := []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"}
	if got := slices.Sorted(slices.Values(p.Extensions)); !slices.Equal(got, wantExt) {
		t.Errorf("extensions %v, want %v", got, wantExt)
	}
	wantTypes := []string{"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"}
	if !slices.Equal(p.AllowedKeyTypes, wantTypes) || p.ForceSourceAddress != "" {
		t.Errorf("key types %v force %q", p.AllowedKeyTypes, p.ForceSourceAddress)
	}
	// Policies do not share slices.
	p.AllowedKeyTypes[0] = "changed"
	p.Extensions[0] = "changed"
	if d := DefaultPolicy(); d.AllowedKeyTypes[0] == "changed" || d.Extensions[0] == "changed" {
		t.Error("DefaultPolicy returns shared slices")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		change    func(*Policy)
		wantField string // "" means valid
		wantRule  string
	}{
		{"default", func(*Policy) {}, "", ""},
		{"no principals", func(p *Policy) { p.AllowedPrincipals = nil }, "", ""},
		{"narrow key types", func(p *Policy) { p.AllowedKeyTypes = []string{KeyTypeEd25519} }, "", ""},
		{"no extensions", func(p *Policy) { p.Extensions = nil }, "", ""},
		{"forced source", func(p *Policy) { p.ForceSourceAddress = "10.0.0.0/8,192.0.2.1" }, "", ""},
		{"empty principal", func(p *Policy) { p.AllowedPrincipals = []string{""} }, "allowed_principals", "empty"},
		{"principal with space", func(p *Policy) { p.AllowedPrincipals = []string{"a b"} }, "allowed_principals", "spaces"},
		{"max zero", func(p *Policy) { p.MaxValidityHours = 0 }, "max_validity_hours", "between 1 and 8760"},
		{"max one year", func(p *Policy) { p.MaxValidityHours = 8760 }, "", ""},
		{"max over a year", func(p *Policy) { p.MaxValidityHours = 8761 }, "max_validity_hours", "between 1 and 8760"},
		// Taken before the bound: its certificates' validity overflowed a
		// Go duration.
		{"max int64", func(p *Policy) { p.MaxValidityHours = math.MaxInt64 }, "max_validity_hours", "between 1 and 8760"},
		{"max negative", func(p *Policy) { p.MaxValidityHours = math.MinInt64 }, "max_validity_hours", "between 1 and 8760"},
		{"default zero", func(p *Policy) { p.DefaultValidityHours = 0 }, "default_validity_hours", "between"},
		{"default over max", func(p *Policy) { p.DefaultValidityHours = 25 }, "default_validity_hours", "between"},
		{"no key types", func(p *Policy) { p.AllowedKeyTypes = nil }, "allowed_key_types", "at least one"},
		{"DSA key type", func(p *Policy) { p.AllowedKeyTypes = []string{"ssh-dss"} }, "allowed_key_types", "ssh-dss"},
		{"unknown extension", func(p *Policy) { p.Extensions = []string{"permit-everything"} }, "extensions", "permit-everything"},
		{"bad forced source", func(p *Policy) { p.ForceSourceAddress = "10.0.0.1/8" }, "force_source_address", "host bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := DefaultPolicy()
			tt.change(&p)
			err := p.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			var verr *domain.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("got %v, want a ValidationError", err)
			}
			if verr.Field != tt.wantField || !strings.Contains(verr.Rule, tt.wantRule) {
				t.Errorf("got field %q rule %q, want field %q rule containing %q", verr.Field, verr.Rule, tt.wantField, tt.wantRule)
			}
		})
	}
}

// TestPolicyBounded: a policy stored before the validity bounds is applied
// within them.
func TestPolicyBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		defaultHours, maxHours int
		wantDefault, wantMax   int
	}{
		{"within", 8, 24, 8, 24},
		{"at the bound", 8760, 8760, 8760, 8760},
		{"max over", 8, math.MaxInt64, 8, 8760},
		{"both over", 9223372036854775807, 9223372036854775807, 8760, 8760},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := DefaultPolicy()
			p.DefaultValidityHours, p.MaxValidityHours = tt.defaultHours, tt.maxHours
			b := p.Bounded()
			if b.DefaultValidityHours != tt.wantDefault || b.MaxValidityHours != tt.wantMax {
				t.Errorf("bounded to default %d max %d, want %d %d", b.DefaultValidityHours, b.MaxValidityHours, tt.wantDefault, tt.wantMax)
			}
			if err := b.Validate(); err != nil {
				t.Errorf("bounded policy invalid: %v", err)
			}
		})
	}
}
