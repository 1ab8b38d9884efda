package planner

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"time"
)

// snapshotJSON is the pricing snapshot shipped in the binary. Its as_of date
// and notes say where each figure comes from.
//
//go:embed snapshot.json
var snapshotJSON []byte

type snapshotFile struct {
	AsOf      string             `json:"as_of"`
	Notes     []string           `json:"notes"`
	Providers []snapshotProvider `json:"providers"`
}

type snapshotProvider struct {
	Provider     string            `json:"provider"`
	Currency     string            `json:"currency"`
	VATIncluded  bool              `json:"vat_included"`
	Regions      []string          `json:"regions"`
	BlockStorage map[string]string `json:"block_storage_gb_month"` // region → price per GB-month of the root volume
	PriceNote    string            `json:"price_note"`
	Types        []snapshotType    `json:"types"`
}

type snapshotType struct {
	Name        string `json:"name"`
	VCPU        int    `json:"vcpu"`
	CPUKind     string `json:"cpu_kind"`
	Arch        string `json:"arch"`
	MemoryGiB   int64  `json:"memory_gib"`
	DiskGB      int64  `json:"disk_gb"`
	Deprecation *struct {
		Announced        string `json:"announced"`
		UnavailableAfter string `json:"unavailable_after"`
	} `json:"deprecation"`
	// SoldWithoutPrice: regions where the type is sold but whose price the
	// snapshot does not know (a live read gives it).
	SoldWithoutPrice []string `json:"sold_without_price"`
	Prices           []struct {
		Regions []string `json:"regions"`
		Hourly  string   `json:"hourly"`
		Monthly string   `json:"monthly"` // empty: hourly × 730 (+ block storage)
	} `json:"prices"`
	Note string `json:"note"`
}

// Snapshot parses the embedded pricing snapshot. Every call returns a fresh
// Catalog, whose ReadAt is the snapshot's as-of date.
func Snapshot() (Catalog, error) {
	return parseSnapshot(snapshotJSON)
}

// SnapshotNotes returns the snapshot's notes on its sources.
func SnapshotNotes() ([]string, error) {
	var f snapshotFile
	if err := json.Unmarshal(snapshotJSON, &f); err != nil {
		return nil, fmt.Errorf("parse pricing snapshot: %w", err)
	}
	return f.Notes, nil
}

func parseSnapshot(data []byte) (Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f snapshotFile
	if err := dec.Decode(&f); err != nil {
		return Catalog{}, fmt.Errorf("parse pricing snapshot: %w", err)
	}
	asOf, err := time.Parse(time.DateOnly, f.AsOf)
	if err != nil {
		return Catalog{}, fmt.Errorf("parse pricing snapshot: as_of: %w", err)
	}
	var types []InstanceType
	var locs []Location
	var unpriced []Offer
	for _, p := range f.Providers {
		for _, r := range p.Regions {
			locs = append(locs, Location{p.Provider, r})
		}
		for _, st := range p.Types {
			ts, err := st.instanceTypes(p, asOf)
			if err != nil {
				return Catalog{}, fmt.Errorf("parse pricing snapshot: %s %s: %w", p.Provider, st.Name, err)
			}
			types = append(types, ts...)
			for _, r := range st.SoldWithoutPrice {
				unpriced = append(unpriced, Offer{Provider: p.Provider, Region: r, Name: st.Name})
			}
		}
	}
	c, err := NewCatalog(SourceSnapshot, asOf, types, locs...)
	if err != nil {
		return Catalog{}, fmt.Errorf("parse pricing snapshot: %w", err)
	}
	c.Unpriced = unpriced
	return c, nil
}

func (st snapshotType) instanceTypes(p snapshotProvider, asOf time.Time) ([]InstanceType, error) {
	var dep *Deprecation
	if st.Deprecation != nil {
		a, err := time.Parse(time.DateOnly, st.Deprecation.Announced)
		if err != nil {
			return nil, fmt.Errorf("deprecation announced: %w", err)
		}
		u, err := time.Parse(time.DateOnly, st.Deprecation.UnavailableAfter)
		if err != nil {
			return nil, fmt.Errorf("deprecation unavailable_after: %w", err)
		}
		dep = &Deprecation{Announced: a, UnavailableAfter: u}
	}
	note := st.Note
	if note == "" {
		note = p.PriceNote
	}
	var out []InstanceType
	for _, pr := range st.Prices {
		hourly, err := ParseMoney(pr.Hourly, p.Currency)
		if err != nil {
			return nil, fmt.Errorf("hourly: %w", err)
		}
		for _, region := range pr.Regions {
			monthly, err := snapshotMonthly(hourly, pr.Monthly, p, region, st.DiskGB)
			if err != nil {
				return nil, fmt.Errorf("%s: monthly: %w", region, err)
			}
			out = append(out, InstanceType{
				Provider: p.Provider, Region: region, Name: st.Name,
				VCPU: st.VCPU, CPUKind: CPUKind(st.CPUKind), Arch: Arch(st.Arch),
				MemoryMiB: st.MemoryGiB * 1024, DiskGB: st.DiskGB,
				Hourly: hourly, Monthly: monthly, VATIncluded: p.VATIncluded,
				Deprecation: dep, Source: SourceSnapshot, ReadAt: asOf, PriceNote: note,
			})
		}
	}
	return out, nil
}

// snapshotMonthly is the given monthly price, or hourly × 730 plus the root
// volume at the region's block-storage price when the provider bills one.
func snapshotMonthly(hourly Money, given string, p snapshotProvider, region string, diskGB int64) (Money, error) {
	if given != "" {
		return ParseMoney(given, p.Currency)
	}
	m, err := hourly.Mul(HoursPerMonth)
	if err != nil {
		return Money{}, err
	}
	if p.BlockStorage == nil {
		return m, nil
	}
	per, ok := p.BlockStorage[region]
	if !ok {
		return Money{}, fmt.Errorf("no block storage price for %s", region)
	}
	gbMonth, err := ParseMoney(per, p.Currency)
	if err != nil {
		return Money{}, err
	}
	disk, err := gbMonth.Mul(diskGB)
	if err != nil {
		return Money{}, err
	}
	return m.Add(disk)
}
