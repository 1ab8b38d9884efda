package sshca

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
)

func TestSign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		caKind     string
		userKind   string
		policy     func(*Policy)
		request    func(*Request)
		principals []string
		hours      int
		source     string
		extensions []string
		sigFormat  string
	}{
		{
			name: "defaults", caKind: "ed25519", userKind: "ed25519",
			principals: []string{"root"}, hours: 8,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "maximum validity", caKind: "ed25519", userKind: "ecdsa-p256",
			request:    func(r *Request) { r.ValidityHours = hours(24) },
			principals: []string{"root"}, hours: 24,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			// The longest a user certificate may live: the certificate and
			// the record name the same end.
			name: "one year", caKind: "ed25519", userKind: "ed25519",
			policy:     func(p *Policy) { p.MaxValidityHours = MaxValidityHours },
			request:    func(r *Request) { r.ValidityHours = hours(8760) },
			principals: []string{"root"}, hours: 8760,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "own username and duplicates", caKind: "ed25519", userKind: "ecdsa-p384",
			request:    func(r *Request) { r.Principals = []string{"alice", "shardform", "alice", "root"} },
			principals: []string{"alice", "shardform", "root"}, hours: 8,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "policy extensions and validity", caKind: "ed25519", userKind: "ecdsa-p521",
			policy: func(p *Policy) {
				p.Extensions = []string{ExtPermitPTY, ExtPermitX11Forwarding}
				p.DefaultValidityHours, p.MaxValidityHours = 1, 2
				p.AllowedPrincipals = []string{"deploy"}
			},
			request:    func(r *Request) { r.Principals = []string{"deploy"} },
			principals: []string{"deploy"}, hours: 1,
			extensions: []string{"permit-X11-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "no extensions", caKind: "ed25519", userKind: "ed25519",
			policy:     func(p *Policy) { p.Extensions = nil },
			principals: []string{"root"}, hours: 8,
			extensions: []string{},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "forced source address", caKind: "ed25519", userKind: "ed25519",
			policy:     func(p *Policy) { p.ForceSourceAddress = "10.0.0.0/8, 2001:db8::/32" },
			principals: []string{"root"}, hours: 8, source: "10.0.0.0/8,2001:db8::/32",
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "narrower source address", caKind: "ed25519", userKind: "ed25519",
			policy:     func(p *Policy) { p.ForceSourceAddress = "10.0.0.0/8" },
			request:    func(r *Request) { r.SourceAddress = "10.1.0.0/16,10.2.3.4" },
			principals: []string{"root"}, hours: 8, source: "10.1.0.0/16,10.2.3.4/32",
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "requested source address", caKind: "ed25519", userKind: "ed25519",
			request:    func(r *Request) { r.SourceAddress = "192.0.2.0/24" },
			principals: []string{"root"}, hours: 8, source: "192.0.2.0/24",
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "RSA user key", caKind: "ed25519", userKind: "rsa-3072",
			principals: []string{"root"}, hours: 8,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoED25519,
		},
		{
			name: "ECDSA CA", caKind: "ecdsa-p256", userKind: "ed25519",
			principals: []string{"root"}, hours: 8,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoECDSA256,
		},
		{
			name: "RSA CA signs with rsa-sha2-512", caKind: "rsa-3072", userKind: "rsa-3072",
			principals: []string{"root"}, hours: 8,
			extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"},
			sigFormat:  ssh.KeyAlgoRSASHA512,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			caKey := newKey(t, tt.caKind)
			a := newAuthority(t, caKey, testNow)
			userKey := newKey(t, tt.userKind)
			policy := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&policy)
			}
			req := baseRequest(authorizedKeyOf(t, userKey) + " alice@laptop")
			if tt.request != nil {
				tt.request(&req)
			}

			rec, err := a.Sign(policy, req)
			if err != nil {
				t.Fatal(err)
			}

			wantAfter := testNow().Add(-5 * time.Minute)
			wantBefore := testNow().Add(time.Duration(tt.hours) * time.Hour)
			userPub, err := ssh.NewPublicKey(userKey.Public())
			if err != nil {
				t.Fatal(err)
			}
			wantKeyID := "user=alice@example.com org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=42"

			// The record.
			if rec.Serial != 42 || rec.KeyID != wantKeyID {
				t.Errorf("record serial %d key id %q, want 42 %q", rec.Serial, rec.KeyID, wantKeyID)
			}
			if !slices.Equal(rec.Principals, tt.principals) {
				t.Errorf("record principals %v, want %v", rec.Principals, tt.principals)
			}
			if !rec.ValidAfter.Equal(wantAfter) || !rec.ValidBefore.Equal(wantBefore) {
				t.Errorf("record valid %s to %s, want %s to %s", rec.ValidAfter, rec.ValidBefore, wantAfter, wantBefore)
			}
			if !slices.Equal(rec.Extensions, tt.extensions) || rec.SourceAddress != tt.source {
				t.Errorf("record extensions %v source %q, want %v %q", rec.Extensions, rec.SourceAddress, tt.extensions, tt.source)
			}
			if rec.KeyType != userPub.Type() || rec.KeyFingerprint != ssh.FingerprintSHA256(userPub) {
				t.Errorf("record key %s %s, want %s %s", rec.KeyType, rec.KeyFingerprint, userPub.Type(), ssh.FingerprintSHA256(userPub))
			}
			if rec.CAFingerprint != a.Fingerprint() {
				t.Errorf("record CA fingerprint %s, want %s", rec.CAFingerprint, a.Fingerprint())
			}
			if strings.HasSuffix(rec.AuthorizedKey, "\n") {
				t.Error("certificate ends with a newline")
			}

			// The certificate itself.
			cert := parseCert(t, rec.AuthorizedKey)
			if cert.CertType != ssh.UserCert || cert.Serial != 42 || cert.KeyId != wantKeyID {
				t.Errorf("certificate type %d serial %d key id %q", cert.CertType, cert.Serial, cert.KeyId)
			}
			if !bytes.Equal(cert.Key.Marshal(), userPub.Marshal()) {
				t.Error("certificate is for another key")
			}
			if !slices.Equal(cert.ValidPrincipals, tt.principals) {
				t.Errorf("certificate principals %v, want %v", cert.ValidPrincipals, tt.principals)
			}
			if cert.ValidAfter != uint64(wantAfter.Unix()) || cert.ValidBefore != uint64(wantBefore.Unix()) {
				t.Errorf("certificate valid %d to %d, want %d to %d", cert.ValidAfter, cert.ValidBefore, wantAfter.Unix(), wantBefore.Unix())
			}
			if got := slices.Sorted(maps.Keys(cert.Extensions)); !slices.Equal(got, tt.extensions) {
				t.Errorf("certificate extensions %v, want %v", got, tt.extensions)
			}
			wantCritical := map[string]string{}
			if tt.source != "" {
				wantCritical["source-address"] = tt.source
			}
			if !maps.Equal(cert.CriticalOptions, wantCritical) {
				t.Errorf("critical options %v, want %v", cert.CriticalOptions, wantCritical)
			}
			if got := authorizedKey(cert.SignatureKey); got != a.PublicKey() {
				t.Errorf("signed by %s, want %s", got, a.PublicKey())
			}
			if cert.Signature.Format != tt.sigFormat {
				t.Errorf("signature format %s, want %s", cert.Signature.Format, tt.sigFormat)
			}
			// The signature verifies and the certificate is valid now for
			// each principal.
			checker := &ssh.CertChecker{Clock: testNow, SupportedCriticalOptions: []string{"source-address"}}
			for _, p := range tt.principals {
				if err := checker.CheckCert(p, cert); err != nil {
					t.Errorf("CheckCert(%s): %v", p, err)
				}
			}
			if err := checker.CheckCert("nobody", cert); err == nil {
				t.Error("CheckCert(nobody) passed")
			}
		})
	}
}

func TestSignUsesClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 999_999_999, time.FixedZone("CET", 3600))
	a := newAuthority(t, newKey(t, "ed25519"), func() time.Time { return now })
	rec, err := a.Sign(DefaultPolicy(), baseRequest(authorizedKeyOf(t, newKey(t, "ed25519"))))
	if err != nil {
		t.Fatal(err)
	}
	wantAfter := time.Date(2030, 1, 1, 10, 55, 0, 0, time.UTC)
	wantBefore := time.Date(2030, 1, 1, 19, 0, 0, 0, time.UTC)
	if !rec.ValidAfter.Equal(wantAfter) || !rec.ValidBefore.Equal(wantBefore) {
		t.Errorf("valid %s to %s, want %s to %s", rec.ValidAfter, rec.ValidBefore, wantAfter, wantBefore)
	}
	if rec.ValidAfter.Location() != time.UTC {
		t.Errorf("times in %s, want UTC", rec.ValidAfter.Location())
	}
}

func TestSignKeyIDFields(t *testing.T) {
	t.Parallel()
	a := newAuthority(t, newKey(t, "ed25519"), testNow)
	req := baseRequest(authorizedKeyOf(t, newKey(t, "ed25519")))
	req.User = "eve example\nserial=1"
	req.Serial = 7
	rec, err := a.Sign(DefaultPolicy(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := "user=eve_example_serial=1 org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=7"
	if rec.KeyID != want {
		t.Errorf("key id %q, want %q", rec.KeyID, want)
	}
}

// dsaPublicKey is an ssh-dss key made by ssh-keygen -t dsa.
const dsaPublicKey = "ssh-dss AAAAB3NzaC1kc3MAAACBANAPh9yGNkZ219RGK8xJ+duSzr1pDn5o8VwLzdNNvwRpj0vQ23iXxywqN5ggZxTYxcWNTm8dVmtTHBK+UeCoUvOVRgfFG0y6qUoKnc9R2hfU39gj/DXNkyI5zD4Gm0i4P44pnoMXOucoVPOsVHLsE+ZPUMTn/BlFGyCJ6FNTP/NrAAAAFQC+cEbDTPMYd+B0mrkV+MKtvBt6twAAAIAe/DMe85fqM9Lb74zHobZwKxaopwx7gjioQ6/lW9f/Gqfpd6Ug+Msk3EGVcJD4wZVjMzOFAp3rjOKwke3TH0hQy5eXt/LZYGFLMgM/brW2gv+SW+ym6zwiPunV4v/s3OplE2HwcvZqoUZj9NJayvovrcrdllcKLDxBVl+N9VGYWwAAAIAd4qgSNR/40Arkzn3NVR7pFiSSvXkr5JM96WzHhwYCaRbZ3fnZDFggCPuaHvfy6UWawHc7dkoPNfUHB+ZeS80olhfehRZq/e/DDbkAj4YBwuiIpN7TMcS5irLDBW7onUT3SP2A+zDmnldwnU4/Bd7iwSBhwJrjO187H/DJ6r5OSQ== dsa@example"

func TestSignRejects(t *testing.T) {
	t.Parallel()
	caKey := newKey(t, "ed25519")
	a := newAuthority(t, caKey, testNow)
	ed := authorizedKeyOf(t, newKey(t, "ed25519"))
	ecdsa := authorizedKeyOf(t, newKey(t, "ecdsa-p256"))
	shortRSA := authorizedKeyOf(t, newKey(t, "rsa-2048"))
	issued, err := a.Sign(DefaultPolicy(), baseRequest(ed))
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([]string, MaxPrincipals+1)
	for i := range tooMany {
		tooMany[i] = "root"
	}

	const (
		invalid = iota
		forbidden
		internal
	)
	tests := []struct {
		name    string
		policy  func(*Policy)
		request func(*Request)
		kind    int
		field   string
		ruleHas string
		msgHas  string
	}{
		{name: "empty key", request: func(r *Request) { r.PublicKey = "  " }, field: "public_key", ruleHas: "required"},
		{name: "malformed key", request: func(r *Request) { r.PublicKey = "ssh-ed25519 AAAAnot-base64" }, field: "public_key", ruleHas: "not a valid"},
		{name: "truncated key", request: func(r *Request) { r.PublicKey = ed[:len(ed)-10] }, field: "public_key", ruleHas: "not a valid"},
		{name: "two keys", request: func(r *Request) { r.PublicKey = ed + "\n" + ecdsa }, field: "public_key", ruleHas: "single"},
		{name: "DSA key", request: func(r *Request) { r.PublicKey = dsaPublicKey }, field: "public_key", ruleHas: "DSA keys are not accepted"},
		{name: "short RSA key", request: func(r *Request) { r.PublicKey = shortRSA }, field: "public_key", ruleHas: "at least 3072 bits, this one has 2048"},
		{name: "certificate as key", request: func(r *Request) { r.PublicKey = issued.AuthorizedKey }, field: "public_key", ruleHas: "not a certificate"},
		{
			name:    "key type outside policy",
			policy:  func(p *Policy) { p.AllowedKeyTypes = []string{KeyTypeEd25519} },
			request: func(r *Request) { r.PublicKey = ecdsa },
			field:   "public_key", ruleHas: "ecdsa-sha2-nistp256 is not allowed",
		},
		{name: "no principals", request: func(r *Request) { r.Principals = nil }, field: "principals", ruleHas: "at least one"},
		{name: "empty principals list", request: func(r *Request) { r.Principals = []string{} }, field: "principals", ruleHas: "at least one"},
		{name: "empty principal", request: func(r *Request) { r.Principals = []string{"root", ""} }, field: "principals", ruleHas: "empty"},
		{name: "principal with comma", request: func(r *Request) { r.Principals = []string{"root,admin"} }, field: "principals", ruleHas: "commas"},
		{name: "too many principals", request: func(r *Request) { r.Principals = tooMany }, field: "principals", ruleHas: "at most 64"},
		{name: "zero validity", request: func(r *Request) { r.ValidityHours = hours(0) }, field: "validity_hours", ruleHas: "positive"},
		{name: "negative validity", request: func(r *Request) { r.ValidityHours = hours(-3) }, field: "validity_hours", ruleHas: "positive"},
		{name: "validity over maximum", request: func(r *Request) { r.ValidityHours = hours(25) }, field: "validity_hours", ruleHas: "at most 24"},
		{
			name:    "validity over policy maximum",
			policy:  func(p *Policy) { p.DefaultValidityHours, p.MaxValidityHours = 1, 4 },
			request: func(r *Request) { r.ValidityHours = hours(5) },
			field:   "validity_hours", ruleHas: "at most 4",
		},
		{
			// Above 2,562,047 hours a Go duration overflows: the
			// certificate would be valid until year 219250468 and the
			// record would say 1734.
			name:    "validity that overflows a duration",
			policy:  func(p *Policy) { p.MaxValidityHours = MaxValidityHours },
			request: func(r *Request) { r.ValidityHours = hours(2_562_048) },
			field:   "validity_hours", ruleHas: "at most 8760",
		},
		{name: "validity of int64", request: func(r *Request) { r.ValidityHours = hours(math.MaxInt64) }, field: "validity_hours", ruleHas: "at most 24"},
		{name: "bad source address", request: func(r *Request) { r.SourceAddress = "example.com" }, field: "source_address", ruleHas: "not an IP"},
		{name: "source address host bits", request: func(r *Request) { r.SourceAddress = "10.0.0.1/8" }, field: "source_address", ruleHas: "host bits"},
		{name: "empty source address item", request: func(r *Request) { r.SourceAddress = "10.0.0.1,," }, field: "source_address", ruleHas: "comma-separated"},

		{name: "principal outside policy", request: func(r *Request) { r.Principals = []string{"root", "admin"} }, kind: forbidden, msgHas: `"admin"`},
		{name: "someone else's username", request: func(r *Request) { r.Principals = []string{"bob"} }, kind: forbidden, msgHas: `"bob"`},
		{name: "no own username", request: func(r *Request) { r.Username = ""; r.Principals = []string{"alice"} }, kind: forbidden, msgHas: `"alice"`},
		{
			name:    "source address outside forced",
			policy:  func(p *Policy) { p.ForceSourceAddress = "10.0.0.0/8" },
			request: func(r *Request) { r.SourceAddress = "10.0.0.0/7" },
			kind:    forbidden, msgHas: "10.0.0.0/7",
		},

		{name: "serial zero", request: func(r *Request) { r.Serial = 0 }, kind: internal, msgHas: "serial 0"},
		{name: "no user", request: func(r *Request) { r.User = "" }, kind: internal, msgHas: "no user"},
		{name: "invalid policy", policy: func(p *Policy) { p.MaxValidityHours = 0 }, kind: internal, msgHas: "invalid policy"},
		{
			name:    "policy maximum over a year",
			policy:  func(p *Policy) { p.MaxValidityHours = math.MaxInt64 },
			request: func(r *Request) { r.ValidityHours = hours(2_562_048) },
			kind:    internal, msgHas: "invalid policy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			policy := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&policy)
			}
			req := baseRequest(ed)
			if tt.request != nil {
				tt.request(&req)
			}
			rec, err := a.Sign(policy, req)
			if err == nil {
				t.Fatalf("signed %+v, want an error", rec)
			}
			if rec != nil {
				t.Errorf("got a record with the error %v", err)
			}
			var verr *domain.ValidationError
			isInvalid := errors.As(err, &verr)
			isForbidden := errors.Is(err, domain.ErrForbidden)
			switch tt.kind {
			case invalid:
				if !isInvalid || isForbidden {
					t.Fatalf("got %v (%T), want a ValidationError", err, err)
				}
				if verr.Field != tt.field || !strings.Contains(verr.Rule, tt.ruleHas) {
					t.Errorf("got field %q rule %q, want field %q rule containing %q", verr.Field, verr.Rule, tt.field, tt.ruleHas)
				}
			case forbidden:
				if !isForbidden || isInvalid {
					t.Fatalf("got %v (%T), want domain.ErrForbidden", err, err)
				}
			case internal:
				if isForbidden || isInvalid {
					t.Fatalf("got %v (%T), want an internal error", err, err)
				}
			}
			if !strings.Contains(err.Error(), tt.msgHas) {
				t.Errorf("error %q does not contain %q", err, tt.msgHas)
			}
		})
	}
}

// BenchmarkSign measures one signature (validation, policy, build, sign):
// ed25519 CA, ed25519 user key.
func BenchmarkSign(b *testing.B) {
	a := newAuthority(b, newKey(b, "ed25519"), time.Now)
	req := baseRequest(authorizedKeyOf(b, newKey(b, "ed25519")))
	req.Principals = []string{"root", "shardform"}
	policy := DefaultPolicy()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Sign(policy, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestValidity: the validity window is computed with checked arithmetic; a
// window a Go duration or a certificate cannot hold is an error, never a
// wrapped-around date.
func TestValidity(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		now        time.Time
		hours      int
		wantBefore time.Time // zero: an error
	}{
		{"one hour", now, 1, time.Date(2030, 1, 1, 13, 0, 0, 0, time.UTC)},
		{"one year", now, 8760, time.Date(2031, 1, 1, 12, 0, 0, 0, time.UTC)},
		{"duration overflow", now, 2_562_048, time.Time{}},
		{"int64 hours", now, math.MaxInt64, time.Time{}},
		{"zero", now, 0, time.Time{}},
		{"negative", now, -1, time.Time{}},
		{"clock before 1970", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), 1, time.Time{}},
		{"ending in year 9999", time.Date(9999, 12, 31, 10, 0, 0, 0, time.UTC), 1, time.Date(9999, 12, 31, 11, 0, 0, 0, time.UTC)},
		{"ending after year 9999", time.Date(9999, 12, 31, 23, 30, 0, 0, time.UTC), 1, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			after, before, err := validity(tt.now, tt.hours)
			if tt.wantBefore.IsZero() {
				if err == nil {
					t.Fatalf("validity %s to %s, want an error", after, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !after.Equal(tt.now.Add(-5*time.Minute)) || !before.Equal(tt.wantBefore) {
				t.Errorf("validity %s to %s, want %s to %s", after, before, tt.now.Add(-5*time.Minute), tt.wantBefore)
			}
		})
	}
}
