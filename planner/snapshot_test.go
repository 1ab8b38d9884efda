package planner

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestSnapshot(t *testing.T) {
	t.Parallel()
	c, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != SourceSnapshot || !c.ReadAt.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("source %s read at %s", c.Source, c.ReadAt)
	}
	byKey := map[string]InstanceType{}
	for _, it := range c.Types {
		byKey[it.Key()] = it
	}
	tests := []struct {
		key        string
		hourly     string
		monthly    string
		deprecated bool
		arch       Arch
	}{
		{"hetzner/fsn1/cx23", "0.006", "4.11", false, ArchX86},
		{"hetzner/hel1/cx33", "0.011", "8.03", false, ArchX86},
		{"hetzner/nbg1/cax11", "0.004", "2.92", false, ArchARM},
		{"hetzner/fsn1/cpx32", "0.016", "11.68", false, ArchX86},
		{"hetzner/fsn1/cx22", "0.006", "3.79", true, ArchX86},
		{"hetzner/fsn1/cpx11", "0.007", "4.35", true, ArchX86},
		// 0.0416 × 730 + 50 GB × 0.08
		{"aws/us-east-1/t3.medium", "0.0416", "34.368", false, ArchX86},
		{"aws/eu-central-1/t4g.small", "0.0192", "18.776", false, ArchARM},
		{"local/local/local-medium", "0.00", "0.00", false, ArchX86},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			it, ok := byKey[tt.key]
			if !ok {
				t.Fatalf("missing %s", tt.key)
			}
			if it.Hourly.Amount() != tt.hourly || it.Monthly.Amount() != tt.monthly {
				t.Errorf("prices %s / %s, want %s / %s", it.Hourly.Amount(), it.Monthly.Amount(), tt.hourly, tt.monthly)
			}
			if (it.Deprecation != nil) != tt.deprecated || it.Arch != tt.arch {
				t.Errorf("deprecation %v arch %s", it.Deprecation, it.Arch)
			}
		})
	}
	t.Run("locations", func(t *testing.T) {
		t.Parallel()
		for _, r := range []string{"fsn1", "nbg1", "hel1", "ash", "hil", "sin"} {
			if !c.HasRegion(r, []string{"hetzner"}) {
				t.Errorf("hetzner region %s missing", r)
			}
		}
		if c.HasRegion("us-east-1", []string{"hetzner"}) {
			t.Error("us-east-1 listed for hetzner")
		}
	})
	t.Run("deprecated unavailable after 2026", func(t *testing.T) {
		t.Parallel()
		cx22 := byKey["hetzner/fsn1/cx22"]
		if s := cx22.StatusAt(time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)); s != StatusDeprecated {
			t.Errorf("status in 2025: %s", s)
		}
		if s := cx22.StatusAt(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)); s != StatusUnavailable {
			t.Errorf("status in 2026: %s", s)
		}
	})
}

func TestCatalogJSONRoundTrip(t *testing.T) {
	t.Parallel()
	c, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Catalog
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Error("catalog changed through JSON")
	}
	var m Money
	if err := json.Unmarshal([]byte(`{"amount":0.1,"currency":"EUR"}`), &m); err == nil {
		t.Error("JSON number accepted as an amount")
	}
}

func TestParseSnapshotRejectsBadData(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"unknown field": `{"as_of":"2026-01-01","bogus":1,"providers":[]}`,
		"bad date":      `{"as_of":"01/01/2026","providers":[]}`,
		"float price":   `{"as_of":"2026-01-01","providers":[{"provider":"x","currency":"EUR","regions":["r"],"types":[{"name":"a","vcpu":1,"cpu_kind":"shared","arch":"x86","memory_gib":1,"disk_gb":1,"prices":[{"regions":["r"],"hourly":"1e-3"}]}]}]}`,
		"bad arch":      `{"as_of":"2026-01-01","providers":[{"provider":"x","currency":"EUR","regions":["r"],"types":[{"name":"a","vcpu":1,"cpu_kind":"shared","arch":"mips","memory_gib":1,"disk_gb":1,"prices":[{"regions":["r"],"hourly":"1"}]}]}]}`,
		"duplicate":     `{"as_of":"2026-01-01","providers":[{"provider":"x","currency":"EUR","regions":["r"],"types":[{"name":"a","vcpu":1,"cpu_kind":"shared","arch":"x86","memory_gib":1,"disk_gb":1,"prices":[{"regions":["r","r"],"hourly":"1"}]}]}]}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := parseSnapshot([]byte(data)); err == nil {
				t.Error("parsed")
			}
		})
	}
}

func TestCatalogOverlay(t *testing.T) {
	t.Parallel()
	snap, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	readAt := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	live, err := NewCatalog(SourceLive, readAt, []InstanceType{{
		Provider: "hetzner", Region: "ash", Name: "cpx22", VCPU: 3, CPUKind: CPUShared, Arch: ArchX86,
		MemoryMiB: 4096, DiskGB: 80, Hourly: mustMoney(t, "0.0104", "EUR"), Monthly: mustMoney(t, "6.49", "EUR"),
		Source: SourceLive, ReadAt: readAt,
	}}, Location{"hetzner", "fsn1"})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := snap.Overlay(live)
	if err != nil {
		t.Fatal(err)
	}
	if merged.Source != SourceMixed {
		t.Errorf("source %s", merged.Source)
	}
	var hetzner, aws int
	for _, it := range merged.Types {
		switch it.Provider {
		case "hetzner":
			hetzner++
			if it.Source != SourceLive {
				t.Errorf("%s from %s", it.Key(), it.Source)
			}
		case "aws":
			aws++
		}
	}
	if hetzner != 1 || aws == 0 {
		t.Errorf("hetzner %d aws %d", hetzner, aws)
	}
	if !merged.HasRegion("fsn1", []string{"hetzner"}) || merged.HasRegion("sin", []string{"hetzner"}) {
		t.Error("live locations not taken")
	}
}

func TestCatalogFilter(t *testing.T) {
	t.Parallel()
	c, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	got, err := c.Filter(PricingFilter{Provider: "hetzner", Region: "fsn1", Arch: ArchARM, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("%d arm types in fsn1, want 4 (cax11..cax41)", len(got))
	}
	all, _ := c.Filter(PricingFilter{Provider: "hetzner", Region: "fsn1", Now: now})
	withDep, _ := c.Filter(PricingFilter{Provider: "hetzner", Region: "fsn1", Now: now, IncludeDeprecated: true})
	if len(withDep)-len(all) != 9 {
		t.Errorf("deprecated types: %d", len(withDep)-len(all))
	}
	for _, f := range []struct {
		filter PricingFilter
		field  string
	}{
		{PricingFilter{Provider: "ovh"}, "provider"},
		{PricingFilter{Region: "mars-1"}, "region"},
		{PricingFilter{Provider: "aws", Region: "fsn1"}, "region"},
		{PricingFilter{MinVCPU: -1}, "min_vcpu"},
		{PricingFilter{Arch: "mips"}, "arch"},
		{PricingFilter{CPUKind: "burst"}, "cpu_kind"},
	} {
		_, err := c.Filter(f.filter)
		assertField(t, err, f.field)
	}
}

func mustMoney(t testing.TB, amount, currency string) Money {
	t.Helper()
	m, err := ParseMoney(amount, currency)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
