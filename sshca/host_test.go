package sshca

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/sshtest"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
)

func baseHostRequest(pub string) HostRequest {
	return HostRequest{
		PublicKey:      pub,
		Principals:     []string{"web-1", "203.0.113.7", "2001:db8::7"},
		Host:           "web-1",
		OrganizationID: "0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f",
		Serial:         7,
	}
}

func TestSignHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		hostKind   string
		request    func(*HostRequest)
		principals []string
		hours      int
	}{
		{name: "defaults", hostKind: "ed25519", principals: []string{"web-1", "203.0.113.7", "2001:db8::7"}, hours: DefaultHostValidityHours},
		{name: "ecdsa host key, one day", hostKind: "ecdsa-p256", request: func(r *HostRequest) { r.ValidityHours = hours(24) },
			principals: []string{"web-1", "203.0.113.7", "2001:db8::7"}, hours: 24},
		{name: "RSA host key, maximum validity", hostKind: "rsa-3072", request: func(r *HostRequest) { r.ValidityHours = hours(MaxHostValidityHours) },
			principals: []string{"web-1", "203.0.113.7", "2001:db8::7"}, hours: MaxHostValidityHours},
		{name: "duplicates removed", hostKind: "ed25519", request: func(r *HostRequest) { r.Principals = []string{"a", "b", "a"} },
			principals: []string{"a", "b"}, hours: DefaultHostValidityHours},
	}
	ca := newKey(t, "ed25519")
	a := newAuthority(t, ca, testNow)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hostKey := newKey(t, tt.hostKind)
			req := baseHostRequest(authorizedKeyOf(t, hostKey))
			if tt.request != nil {
				tt.request(&req)
			}
			got, err := a.SignHost(req)
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCert(t, got.AuthorizedKey)
			if cert.CertType != ssh.HostCert {
				t.Errorf("cert type %d, want host", cert.CertType)
			}
			if !slices.Equal(cert.ValidPrincipals, tt.principals) || !slices.Equal(got.Principals, tt.principals) {
				t.Errorf("principals %v / %v, want %v", cert.ValidPrincipals, got.Principals, tt.principals)
			}
			wantAfter := testNow().Add(-Backdate)
			wantBefore := testNow().Add(time.Duration(tt.hours) * time.Hour)
			if cert.ValidAfter != uint64(wantAfter.Unix()) || cert.ValidBefore != uint64(wantBefore.Unix()) ||
				!got.ValidAfter.Equal(wantAfter) || !got.ValidBefore.Equal(wantBefore) {
				t.Errorf("validity %d..%d, want %v..%v", cert.ValidAfter, cert.ValidBefore, wantAfter, wantBefore)
			}
			if len(cert.Extensions) != 0 || len(cert.CriticalOptions) != 0 {
				t.Errorf("host certificate carries options %+v", cert.Permissions)
			}
			if want := "host=web-1 org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=7"; cert.KeyId != want || got.KeyID != want || cert.Serial != 7 {
				t.Errorf("key id %q serial %d", cert.KeyId, cert.Serial)
			}
			// The certificate verifies as a host certificate of the CA.
			checker := &ssh.CertChecker{
				IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
					return string(auth.Marshal()) == string(cert.SignatureKey.Marshal()) && ssh.FingerprintSHA256(auth) == a.Fingerprint()
				},
				Clock: testNow,
			}
			if err := checker.CheckHostKey(tt.principals[0]+":22", nil, cert); err != nil {
				t.Errorf("CheckHostKey: %v", err)
			}
			if err := checker.CheckHostKey("elsewhere:22", nil, cert); err == nil {
				t.Error("certificate accepted for a host it does not name")
			}
		})
	}
}

func TestSignHostRejects(t *testing.T) {
	t.Parallel()
	a := newAuthority(t, newKey(t, "ed25519"), testNow)
	ed := authorizedKeyOf(t, newKey(t, "ed25519"))
	tests := []struct {
		name    string
		request func(*HostRequest)
		field   string // "" means an internal error
		ruleHas string
	}{
		{name: "empty key", request: func(r *HostRequest) { r.PublicKey = "" }, field: "public_key", ruleHas: "required"},
		{name: "short RSA key", request: func(r *HostRequest) { r.PublicKey = authorizedKeyOf(t, newKey(t, "rsa-2048")) }, field: "public_key", ruleHas: "at least 3072 bits"},
		{name: "DSA key", request: func(r *HostRequest) { r.PublicKey = dsaPublicKey }, field: "public_key", ruleHas: "DSA"},
		{name: "no principals", request: func(r *HostRequest) { r.Principals = nil }, field: "principals", ruleHas: "at least one"},
		{name: "empty principal", request: func(r *HostRequest) { r.Principals = []string{"web-1", ""} }, field: "principals", ruleHas: "empty"},
		{name: "wildcard", request: func(r *HostRequest) { r.Principals = []string{"*.example.com"} }, field: "principals", ruleHas: "wildcards"},
		{name: "zero validity", request: func(r *HostRequest) { r.ValidityHours = hours(0) }, field: "validity_hours", ruleHas: "positive"},
		{name: "over a year", request: func(r *HostRequest) { r.ValidityHours = hours(MaxHostValidityHours + 1) }, field: "validity_hours", ruleHas: "at most 8760"},
		{name: "serial 0", request: func(r *HostRequest) { r.Serial = 0 }, ruleHas: "serial 0"},
		{name: "no host", request: func(r *HostRequest) { r.Host = "" }, ruleHas: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := baseHostRequest(ed)
			tt.request(&req)
			_, err := a.SignHost(req)
			if err == nil {
				t.Fatal("signed")
			}
			var verr *domain.ValidationError
			isValidation := errors.As(err, &verr)
			switch {
			case tt.field == "" && isValidation:
				t.Errorf("got validation error %v, want internal", err)
			case tt.field != "" && (!isValidation || verr.Field != tt.field):
				t.Errorf("got %v, want a validation error on %s", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.ruleHas) {
				t.Errorf("error %q lacks %q", err, tt.ruleHas)
			}
		})
	}
}

// TestSignHostReadBySSHKeygen: ssh-keygen -L reads a host certificate.
func TestSignHostReadBySSHKeygen(t *testing.T) {
	t.Parallel()
	ca := newKey(t, "ed25519")
	a := newAuthority(t, ca, time.Now)
	got, err := a.SignHost(baseHostRequest(authorizedKeyOf(t, newKey(t, "ecdsa-p384"))))
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "ssh_host_ecdsa_key-cert.pub", []byte(got.AuthorizedKey+"\n"))
	out, code := sshtest.Run(t, "ssh-keygen", "-L", "-f", path)
	if code != 0 {
		t.Fatalf("ssh-keygen -L: %d %s", code, out)
	}
	for _, want := range []string{
		"Type: ecdsa-sha2-nistp384-cert-v01@openssh.com host certificate",
		"Signing CA: ED25519 " + a.Fingerprint(),
		`Key ID: "host=web-1 org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=7"`,
		"Serial: 7",
		"web-1", "203.0.113.7", "2001:db8::7",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ssh-keygen -L lacks %q:\n%s", want, out)
		}
	}
}
