package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/shardform/shardform/planner"
)

// ErrCredentialRefused reports that the provider's API refused the
// credential (401 or 403): retrying will not help until it is replaced.
var ErrCredentialRefused = errors.New("the provider refused the credential")

// pricingTimeout bounds one pricing read (two API calls, paginated).
const pricingTimeout = 60 * time.Second

// HetznerPricing reads Hetzner Cloud's server types (ServerType.All) and
// prices (Pricing.Get) through hcloud-go: the live side of the planner's
// catalog (the pricing_refresh job).
type HetznerPricing struct {
	// Endpoint is the API's base URL; empty: Hetzner's own
	// (https://api.hetzner.cloud/v1). Tests point it at a local fake.
	Endpoint string
}

// Provider names the catalog provider the prices replace.
func (HetznerPricing) Provider() string { return "hetzner" }

// ReadPricing returns every server type with its net price (VAT excluded)
// in every location Hetzner prices it, marked live and read at readAt.
// secret is a hetzner credential's secret ({"token": ...}).
func (h HetznerPricing) ReadPricing(ctx context.Context, secret map[string]string, readAt time.Time) ([]planner.InstanceType, error) {
	c := hcloudClient(h.Endpoint, secret["token"], pricingTimeout)
	types, err := c.ServerType.All(ctx)
	if err != nil {
		return nil, hcloudError("list server types", err)
	}
	prices, _, err := c.Pricing.Get(ctx)
	if err != nil {
		return nil, hcloudError("get pricing", err)
	}
	return HetznerInstanceTypes(types, prices, readAt)
}

// hcloudClient is an hcloud-go client for token against endpoint (empty:
// Hetzner's own API), each request bounded by timeout and retried once;
// extra options come last.
func hcloudClient(endpoint, token string, timeout time.Duration, extra ...hcloud.ClientOption) *hcloud.Client {
	opts := []hcloud.ClientOption{
		hcloud.WithToken(token),
		hcloud.WithApplication("shardform", ""),
		hcloud.WithHTTPClient(&http.Client{Timeout: timeout}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 1, BackoffFunc: hcloud.ConstantBackoff(time.Second)}),
	}
	if endpoint != "" {
		opts = append(opts, hcloud.WithEndpoint(endpoint))
	}
	return hcloud.NewClient(append(opts, extra...)...)
}

// hcloudError wraps an hcloud-go error with the operation, marking a refused
// credential with ErrCredentialRefused.
func hcloudError(op string, err error) error {
	if hcloud.IsError(err, hcloud.ErrorCodeUnauthorized, hcloud.ErrorCodeForbidden) {
		return fmt.Errorf("hetzner: %s: %w: %w", op, ErrCredentialRefused, err)
	}
	return fmt.Errorf("hetzner: %s: %w", op, err)
}

// HetznerInstanceTypes joins server types with their per-location prices.
// Prices are parsed exactly from hcloud's decimal strings (net amounts);
// memory in GB becomes MiB. A location's own deprecation wins over the
// type's. Types without a price, and prices of types not listed, are left
// out; an unknown CPU type or architecture, or a price that is not an exact
// decimal, fails the whole read (the previous data stays in use).
func HetznerInstanceTypes(types []*hcloud.ServerType, pricing hcloud.Pricing, readAt time.Time) ([]planner.InstanceType, error) {
	byName := make(map[string][]hcloud.ServerTypeLocationPricing, len(pricing.ServerTypes))
	for _, p := range pricing.ServerTypes {
		if p.ServerType != nil {
			byName[p.ServerType.Name] = p.Pricings
		}
	}
	var out []planner.InstanceType
	for _, st := range types {
		if st == nil {
			continue
		}
		locPrices, ok := byName[st.Name]
		if !ok || len(locPrices) == 0 {
			continue
		}
		var kind planner.CPUKind
		switch st.CPUType {
		case hcloud.CPUTypeShared:
			kind = planner.CPUShared
		case hcloud.CPUTypeDedicated:
			kind = planner.CPUDedicated
		default:
			return nil, fmt.Errorf("hetzner: server type %s: unknown cpu type %q", st.Name, st.CPUType)
		}
		var arch planner.Arch
		switch st.Architecture {
		case hcloud.ArchitectureX86:
			arch = planner.ArchX86
		case hcloud.ArchitectureARM:
			arch = planner.ArchARM
		default:
			return nil, fmt.Errorf("hetzner: server type %s: unknown architecture %q", st.Name, st.Architecture)
		}
		for _, lp := range locPrices {
			if lp.Location == nil || lp.Location.Name == "" {
				continue
			}
			loc := lp.Location.Name
			currency := lp.Hourly.Currency
			if currency == "" {
				currency = pricing.Currency
			}
			hourly, err := planner.ParseMoney(lp.Hourly.Net, currency)
			if err != nil {
				return nil, fmt.Errorf("hetzner: server type %s in %s: hourly price: %w", st.Name, loc, err)
			}
			monthly, err := planner.ParseMoney(lp.Monthly.Net, currency)
			if err != nil {
				return nil, fmt.Errorf("hetzner: server type %s in %s: monthly price: %w", st.Name, loc, err)
			}
			out = append(out, planner.InstanceType{
				Provider: "hetzner", Region: loc, Name: st.Name,
				VCPU: st.Cores, CPUKind: kind, Arch: arch,
				MemoryMiB: int64(math.Round(float64(st.Memory) * 1024)), DiskGB: int64(st.Disk),
				Hourly: hourly, Monthly: monthly, VATIncluded: false,
				Deprecation: hetznerDeprecation(st, loc),
				Source:      planner.SourceLive, ReadAt: readAt,
			})
		}
	}
	return out, nil
}

// hetznerDeprecation is the deprecation of st in location loc: the
// location's own notice, else the type's (the older, type-wide field).
func hetznerDeprecation(st *hcloud.ServerType, loc string) *planner.Deprecation {
	info := st.Deprecation
	for _, l := range st.Locations {
		if l.Location != nil && l.Location.Name == loc && l.Deprecation != nil {
			info = l.Deprecation
		}
	}
	if info == nil {
		return nil
	}
	return &planner.Deprecation{Announced: info.Announced.UTC(), UnavailableAfter: info.UnavailableAfter.UTC()}
}
