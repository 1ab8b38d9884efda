package dns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
)

func TestRecordName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"www", "www.example.com", true},
		{"WWW.Example.COM", "www.example.com", true},
		{"www.example.com.", "www.example.com", true},
		{"@", "example.com", true},
		{"example.com.", "example.com", true},
		{"*.dev", "*.dev.example.com", true},
		{"_minecraft._tcp.mc", "_minecraft._tcp.mc.example.com", true},
		{"a.b.c", "a.b.c.example.com", true},
		{"www.example.org.", "", false},
		{"", "", false},
		{"a..b", "", false},
		{"-a", "", false},
		{"a-", "", false},
		{"w*w", "", false},
		{"a.*", "", false},
	} {
		got, err := RecordName("name", tc.in, "example.com")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("RecordName(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMarker(t *testing.T) {
	t.Parallel()
	org, rec := uuid.New(), uuid.New()
	m := Marker(org, rec)
	if len(m) > 100 {
		t.Errorf("marker %q is longer than Cloudflare's 100-character comment", m)
	}
	o, r, ok := parseMarker(m)
	if !ok || o != org || r != rec || !ownedBy(m, org) || ownedBy(m, uuid.New()) {
		t.Errorf("parseMarker(%q) = %v %v %v", m, o, r, ok)
	}
	for _, c := range []string{"", "made by hand", "shardform:", "shardform:x:y", "shardform:" + org.String()} {
		if _, _, ok := parseMarker(c); ok || ownedBy(c, org) {
			t.Errorf("%q read as a marker", c)
		}
	}
}

func TestSpecContentForms(t *testing.T) {
	t.Parallel()
	p := func(v int) *int { return &v }
	for _, tc := range []struct {
		sp   Spec
		want string
	}{
		{Spec{Type: "a", Name: "x", Content: " 192.0.2.1 "}, "192.0.2.1"},
		{Spec{Type: "AAAA", Name: "x", Content: "2001:DB8:0::1"}, "2001:db8::1"},
		{Spec{Type: "CNAME", Name: "x", Content: "Target.Example.NET."}, "target.example.net"},
		{Spec{Type: "SRV", Name: "_mc._tcp.x", Content: "5 25565 mc.example.com.", Priority: p(1)}, "5 25565 mc.example.com"},
		{Spec{Type: "SRV", Name: "_mc._udp.x", Weight: p(0), Port: p(19132), Target: "b.example.com", Priority: p(0)}, "0 19132 b.example.com"},
		{Spec{Type: "CAA", Name: "@", Content: `128 ISSUE letsencrypt.org`}, `128 issue "letsencrypt.org"`},
	} {
		d, err := tc.sp.Validate("example.com")
		if err != nil || d.Content != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.sp, d.Content, err, tc.want)
		}
	}
	if _, err := (Spec{Type: "SRV", Name: "_mc._tcp.x", Content: "5 25565 a.example.com", Port: p(1), Priority: p(1)}).Validate("example.com"); err == nil {
		t.Error("SRV content disagreeing with port accepted")
	}
}

// newTestService is a service whose client talks to the fake (no store,
// so no rate-limit budget: only the Cloudflare side is exercised).
func newTestService(t *testing.T, f *cffake.Fake) *Service {
	t.Helper()
	return &Service{opts: Options{Endpoint: f.URL}}
}

func TestClientReadsEveryPageAndClassifiesErrors(t *testing.T) {
	t.Parallel()
	f := cffake.New(t)
	zone := "023e105f4ecef8ad9ca31a8372d0c353"
	f.AddZone(zone, "example.com")
	f.AddToken("good")
	recs := make([]cffake.Record, 12001)
	for i := range recs {
		recs[i] = cffake.Record{Type: "A", Name: fmt.Sprintf("n%05d.example.com", i), Content: "192.0.2.1"}
	}
	f.PutMany(zone, recs)
	s := newTestService(t, f)
	ctx := context.Background()
	cl, err := s.newClient("good")
	if err != nil {
		t.Fatal(err)
	}
	got, calls, err := cl.listRecords(ctx, zone, "", "")
	if err != nil || len(got) != 12001 || calls != 3 {
		t.Fatalf("list: %d records in %d calls, %v; want 12001 in 3", len(got), calls, err)
	}
	one, _, err := cl.listRecords(ctx, zone, "n00042.example.com", "A")
	if err != nil || len(one) != 1 || one[0].Name != "n00042.example.com" {
		t.Fatalf("filtered list: %v %v", one, err)
	}

	f.FailNext(1, "get_record", http.StatusTooManyRequests, 3*time.Second)
	_, err = cl.get(ctx, zone, one[0].ID)
	var e *cfError
	if !errors.As(err, &e) || !errors.Is(err, errRateLimited) || e.retryAfter != 3*time.Second {
		t.Errorf("429: %v (%+v)", err, e)
	}
	f.FailNext(1, "get_record", http.StatusBadGateway, 0)
	if _, err := cl.get(ctx, zone, one[0].ID); !errors.Is(err, errTransient) {
		t.Errorf("502: %v", err)
	}
	if _, err := cl.get(ctx, zone, "ffffffffffffffffffffffffffffffff"); !errors.Is(err, errNotFound) {
		t.Errorf("404: %v", err)
	}
	_, err = cl.create(ctx, zone, Desired{Type: "A", Name: "n00042.example.com", Content: "192.0.2.1", TTL: 1}, "")
	if !errors.As(err, &e) || e.kind != nil || !e.hasCode(81057) {
		t.Errorf("duplicate create: %v", err)
	}
	bad, err := s.newClient("revoked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.listZones(ctx); !errors.Is(err, ErrRefused) || err.Error() != "cloudflare: list zones: Invalid API Token (1000)" {
		t.Errorf("401: %v", err)
	}
	f.AddToken("narrow", "ffffffffffffffffffffffffffffffff")
	narrow, _ := s.newClient("narrow")
	if _, _, err := narrow.listRecords(ctx, zone, "", ""); !errors.Is(err, ErrRefused) {
		t.Errorf("403: %v", err)
	}
}
