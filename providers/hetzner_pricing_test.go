package providers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
)

func TestHetznerPricing(t *testing.T) {
	t.Parallel()
	readAt := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("reads types and exact prices", func(t *testing.T) {
		t.Parallel()
		fake := hcloudfake.New(t, hcloudfake.Options{})
		types, err := providers.HetznerPricing{Endpoint: fake.URL}.ReadPricing(ctx, map[string]string{"token": hcloudfake.Token}, readAt)
		if err != nil {
			t.Fatal(err)
		}
		// cx22 2 + cpx11 2 + cx23 3 + cax11 3 + ccx13 2; tx99 (no price) and gone1 (not listed) left out.
		if len(types) != 12 {
			t.Fatalf("%d types, want 12: %+v", len(types), types)
		}
		byKey := map[string]planner.InstanceType{}
		for _, it := range types {
			byKey[it.Key()] = it
			if it.Source != planner.SourceLive || !it.ReadAt.Equal(readAt) || it.VATIncluded {
				t.Errorf("%s: source %s, read at %v, vat included %v", it.Key(), it.Source, it.ReadAt, it.VATIncluded)
			}
		}
		for _, missing := range []string{"hetzner/fsn1/tx99", "hetzner/fsn1/gone1"} {
			if _, ok := byKey[missing]; ok {
				t.Errorf("%s listed", missing)
			}
		}
		tests := []struct {
			key             string
			vcpu            int
			kind            planner.CPUKind
			arch            planner.Arch
			memMiB, diskGB  int64
			hourly, monthly string
			deprecated      bool
		}{
			{"hetzner/fsn1/cx23", 2, planner.CPUShared, planner.ArchX86, 4096, 40, "0.0056", "3.49", false},
			{"hetzner/hel1/cax11", 2, planner.CPUShared, planner.ArchARM, 4096, 40, "0.0061", "3.79", false},
			{"hetzner/ash/ccx13", 2, planner.CPUDedicated, planner.ArchX86, 8192, 80, "0.024", "14.87", false},
			{"hetzner/nbg1/cx22", 2, planner.CPUShared, planner.ArchX86, 4096, 40, "0.006", "3.79", true},
			{"hetzner/fsn1/cpx11", 2, planner.CPUShared, planner.ArchX86, 2048, 40, "0.0073", "4.49", false},
			{"hetzner/hel1/cpx11", 2, planner.CPUShared, planner.ArchX86, 2048, 40, "0.0073", "4.49", true},
		}
		for _, tt := range tests {
			got, ok := byKey[tt.key]
			if !ok {
				t.Errorf("%s missing", tt.key)
				continue
			}
			if got.VCPU != tt.vcpu || got.CPUKind != tt.kind || got.Arch != tt.arch || got.MemoryMiB != tt.memMiB || got.DiskGB != tt.diskGB {
				t.Errorf("%s: %+v", tt.key, got)
			}
			if got.Hourly.Amount() != tt.hourly || got.Monthly.Amount() != tt.monthly || got.Hourly.Currency != "EUR" || got.Monthly.Currency != "EUR" {
				t.Errorf("%s: hourly %s, monthly %s; want %s and %s EUR", tt.key, got.Hourly, got.Monthly, tt.hourly, tt.monthly)
			}
			if (got.Deprecation != nil) != tt.deprecated {
				t.Errorf("%s: deprecation %+v, want deprecated %v", tt.key, got.Deprecation, tt.deprecated)
			} else if tt.deprecated && (!got.Deprecation.Announced.Equal(hcloudfake.Announced()) || !got.Deprecation.UnavailableAfter.Equal(hcloudfake.UnavailableAfter())) {
				t.Errorf("%s: deprecation %+v", tt.key, got.Deprecation)
			}
		}
		// Exact: 0.0056 is 5,600,000 nanos, not a float's neighbour.
		if n := byKey["hetzner/fsn1/cx23"].Hourly.Nanos; n != 5_600_000 {
			t.Errorf("cx23 hourly = %d nanos", n)
		}
		if _, err := planner.NewCatalog(planner.SourceLive, readAt, types); err != nil {
			t.Errorf("live types do not make a catalog: %v", err)
		}
		if fake.Requests.Load() < 4 { // three pages of server types and the pricing
			t.Errorf("%d requests: server types not paginated?", fake.Requests.Load())
		}
	})

	errorTests := []struct {
		name    string
		opts    hcloudfake.Options
		token   string
		want    string
		refused bool // wraps providers.ErrCredentialRefused: not worth retrying
	}{
		{"wrong token", hcloudfake.Options{}, "not-the-token", "unauthorized", true},
		{"token may not read pricing", hcloudfake.Options{PricingStatus: http.StatusForbidden}, hcloudfake.Token, "get pricing", true},
		{"pricing unavailable", hcloudfake.Options{PricingStatus: http.StatusServiceUnavailable}, hcloudfake.Token, "get pricing", false},
	}
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := hcloudfake.New(t, tt.opts)
			_, err := providers.HetznerPricing{Endpoint: fake.URL}.ReadPricing(ctx, map[string]string{"token": tt.token}, readAt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if errors.Is(err, providers.ErrCredentialRefused) != tt.refused {
				t.Errorf("err = %v: refused %v, want %v", err, !tt.refused, tt.refused)
			}
		})
	}
}

func TestHetznerInstanceTypesRejects(t *testing.T) {
	t.Parallel()
	loc := &hcloud.Location{Name: "fsn1"}
	good := hcloud.Price{Currency: "EUR", Net: "0.0056000000000000"}
	tests := []struct {
		name  string
		st    hcloud.ServerType
		price hcloud.Price
		want  string
	}{
		{"unknown cpu type", hcloud.ServerType{Name: "x1", Cores: 1, Memory: 1, Disk: 10, CPUType: "quantum", Architecture: hcloud.ArchitectureX86}, good, "cpu type"},
		{"unknown architecture", hcloud.ServerType{Name: "x1", Cores: 1, Memory: 1, Disk: 10, CPUType: hcloud.CPUTypeShared, Architecture: "riscv"}, good, "architecture"},
		{"inexact price", hcloud.ServerType{Name: "x1", Cores: 1, Memory: 1, Disk: 10, CPUType: hcloud.CPUTypeShared, Architecture: hcloud.ArchitectureX86},
			hcloud.Price{Currency: "EUR", Net: "0.00560000000001"}, "hourly price"},
		{"float notation", hcloud.ServerType{Name: "x1", Cores: 1, Memory: 1, Disk: 10, CPUType: hcloud.CPUTypeShared, Architecture: hcloud.ArchitectureX86},
			hcloud.Price{Currency: "EUR", Net: "5.6e-3"}, "hourly price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := tt.st
			pricing := hcloud.Pricing{Currency: "EUR", ServerTypes: []hcloud.ServerTypePricing{{
				ServerType: &hcloud.ServerType{Name: st.Name},
				Pricings:   []hcloud.ServerTypeLocationPricing{{Location: loc, Hourly: tt.price, Monthly: good}},
			}}}
			_, err := providers.HetznerInstanceTypes([]*hcloud.ServerType{&st}, pricing, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
