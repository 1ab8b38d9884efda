package planner

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Location is a region a provider offers, priced in the catalog or not (the
// snapshot knows Hetzner's US and Singapore locations without their prices).
type Location struct {
	Provider string `json:"provider"`
	Region   string `json:"region"`
}

// Catalog is a set of priced instance types: the embedded snapshot, a live
// read of a provider's API, or a snapshot overlaid with live data. A Catalog
// is a value: functions that change it return a new one.
type Catalog struct {
	Source    Source         `json:"source"`
	ReadAt    time.Time      `json:"read_at"` // the snapshot's as-of date, or the time of the oldest live read
	Types     []InstanceType `json:"types"`   // sorted by provider, region, name
	Locations []Location     `json:"locations"`
	// Unpriced: types sold in a region whose price the catalog does not
	// know (the snapshot's US Hetzner locations): a driver may offer them
	// there, the planner cannot price them.
	Unpriced []Offer `json:"unpriced,omitempty"`
}

// Offer is a type sold in a region.
type Offer struct {
	Provider string `json:"provider"`
	Region   string `json:"region"`
	Name     string `json:"name"`
}

// NewCatalog validates types and builds a catalog. extra names locations
// that have no priced type yet; every type's own location is added.
func NewCatalog(source Source, readAt time.Time, types []InstanceType, extra ...Location) (Catalog, error) {
	seen := make(map[string]bool, len(types))
	for _, t := range types {
		if err := t.Validate(); err != nil {
			return Catalog{}, fmt.Errorf("new catalog: %w", err)
		}
		if seen[t.Key()] {
			return Catalog{}, fmt.Errorf("new catalog: instance type %s listed twice", t.Key())
		}
		seen[t.Key()] = true
	}
	c := Catalog{Source: source, ReadAt: readAt, Types: slices.Clone(types)}
	slices.SortFunc(c.Types, func(a, b InstanceType) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Name, b.Name))
	})
	locs := slices.Clone(extra)
	for _, t := range c.Types {
		locs = append(locs, Location{t.Provider, t.Region})
	}
	slices.SortFunc(locs, compareLocation)
	c.Locations = slices.Compact(locs)
	return c, nil
}

func compareLocation(a, b Location) int {
	return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Region, b.Region))
}

// HasProvider reports whether the catalog knows provider.
func (c Catalog) HasProvider(provider string) bool {
	return slices.ContainsFunc(c.Locations, func(l Location) bool { return l.Provider == provider })
}

// HasRegion reports whether region exists for one of providers (any
// provider when providers is empty).
func (c Catalog) HasRegion(region string, providers []string) bool {
	return slices.ContainsFunc(c.Locations, func(l Location) bool {
		return l.Region == region && (len(providers) == 0 || slices.Contains(providers, l.Provider))
	})
}

// Overlay returns c with every provider present in live replaced by live's
// types for it: the planner uses the newest live data and falls back to the
// snapshot for providers that have none.
func (c Catalog) Overlay(live Catalog) (Catalog, error) {
	if len(live.Types) == 0 {
		return c, nil
	}
	replaced := map[string]bool{}
	for _, t := range live.Types {
		replaced[t.Provider] = true
	}
	types := slices.Clone(live.Types)
	for _, t := range c.Types {
		if !replaced[t.Provider] {
			types = append(types, t)
		}
	}
	locs := slices.Clone(live.Locations)
	for _, l := range c.Locations {
		if !replaced[l.Provider] {
			locs = append(locs, l)
		}
	}
	readAt := c.ReadAt
	if live.ReadAt.Before(readAt) || readAt.IsZero() {
		readAt = live.ReadAt
	}
	source := SourceMixed
	if len(types) == len(live.Types) {
		source = live.Source
	}
	out, err := NewCatalog(source, readAt, types, locs...)
	if err != nil {
		return Catalog{}, fmt.Errorf("overlay catalog: %w", err)
	}
	return out, nil
}

// PricingFilter selects catalog entries (GET /v1/planner/pricing).
type PricingFilter struct {
	Provider          string
	Region            string
	MinVCPU           int
	MinMemoryMiB      int64
	Arch              Arch
	CPUKind           CPUKind
	IncludeDeprecated bool      // include deprecated and unavailable types
	Now               time.Time // for deprecation status
}

// Filter returns the entries matching f, in catalog order. It validates the
// filter, naming the offending field.
func (c Catalog) Filter(f PricingFilter) ([]InstanceType, error) {
	switch {
	case f.Provider != "" && !c.HasProvider(f.Provider):
		return nil, invalid("provider", "unknown provider %q", f.Provider)
	case f.Region != "" && !c.HasRegion(f.Region, nonEmpty(f.Provider)):
		return nil, invalid("region", "unknown region %q", f.Region)
	case f.MinVCPU < 0:
		return nil, invalid("min_vcpu", "must not be negative")
	case f.MinMemoryMiB < 0:
		return nil, invalid("min_memory_gb", "must not be negative")
	case f.Arch != "" && !f.Arch.valid():
		return nil, invalid("arch", "must be x86 or arm")
	case f.CPUKind != "" && f.CPUKind != CPUShared && f.CPUKind != CPUDedicated:
		return nil, invalid("cpu_kind", "must be shared or dedicated")
	}
	var out []InstanceType
	for _, t := range c.Types {
		if (f.Provider != "" && t.Provider != f.Provider) || (f.Region != "" && t.Region != f.Region) ||
			t.VCPU < f.MinVCPU || t.MemoryMiB < f.MinMemoryMiB ||
			(f.Arch != "" && t.Arch != f.Arch) || (f.CPUKind != "" && t.CPUKind != f.CPUKind) ||
			(!f.IncludeDeprecated && t.StatusAt(f.Now) != StatusAvailable) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
