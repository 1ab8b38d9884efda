package planner

import (
	"fmt"
	"time"
)

// HoursPerMonth is the month length used to turn hourly prices into monthly
// ones when a source gives only the hourly price (Hetzner and AWS both use
// 730).
const HoursPerMonth = 730

// CPUKind says whether vCPUs are shared with other tenants or dedicated.
type CPUKind string

// CPU kinds.
const (
	CPUShared    CPUKind = "shared"
	CPUDedicated CPUKind = "dedicated"
)

// Arch is a CPU architecture.
type Arch string

// Architectures.
const (
	ArchX86 Arch = "x86"
	ArchARM Arch = "arm"
)

func (a Arch) valid() bool { return a == ArchX86 || a == ArchARM }

// Source says where catalog data was read.
type Source string

// Catalog sources.
const (
	SourceSnapshot Source = "snapshot" // embedded in the binary
	SourceLive     Source = "live"     // read from the provider's API
	SourceMixed    Source = "mixed"    // a snapshot with some providers replaced by live data
)

// Deprecation is a provider's notice that a type is going away.
type Deprecation struct {
	Announced        time.Time `json:"announced"`
	UnavailableAfter time.Time `json:"unavailable_after"` // no new servers of the type after this
}

// Status is an instance type's availability at a point in time.
type Status string

// Statuses.
const (
	StatusAvailable   Status = "available"
	StatusDeprecated  Status = "deprecated"  // announced, still orderable
	StatusUnavailable Status = "unavailable" // past its unavailable-after date
)

// InstanceType is one server type offered by a provider in one region, with
// its price there.
type InstanceType struct {
	Provider    string       `json:"provider"` // "hetzner", "aws", "local"
	Region      string       `json:"region"`   // "fsn1", "eu-central-1", "local"
	Name        string       `json:"name"`     // "cx23", "t3.medium", "local-small"
	VCPU        int          `json:"vcpu"`
	CPUKind     CPUKind      `json:"cpu_kind"`
	Arch        Arch         `json:"arch"`
	MemoryMiB   int64        `json:"memory_mib"`
	DiskGB      int64        `json:"disk_gb"`
	Hourly      Money        `json:"hourly"`
	Monthly     Money        `json:"monthly"` // what a full month costs (the provider's cap, or hourly × 730)
	VATIncluded bool         `json:"vat_included"`
	Deprecation *Deprecation `json:"deprecation,omitempty"`
	Source      Source       `json:"source"`
	ReadAt      time.Time    `json:"read_at"`
	// PriceNote says where a snapshot price comes from and how far to
	// trust it; live prices have none.
	PriceNote string `json:"price_note,omitempty"`
}

// Key identifies the type in its catalog: provider/region/name.
func (t InstanceType) Key() string { return t.Provider + "/" + t.Region + "/" + t.Name }

// Capacity is the type's raw capacity (disk GB counted as GiB).
func (t InstanceType) Capacity() Resources {
	return Resources{MilliCPU: int64(t.VCPU) * 1000, MemoryMiB: t.MemoryMiB, DiskMiB: t.DiskGB * 1024}
}

// StatusAt is the type's availability at now.
func (t InstanceType) StatusAt(now time.Time) Status {
	switch {
	case t.Deprecation == nil:
		return StatusAvailable
	case !t.Deprecation.UnavailableAfter.IsZero() && !now.Before(t.Deprecation.UnavailableAfter):
		return StatusUnavailable
	}
	return StatusDeprecated
}

// Validate checks the type's fields.
func (t InstanceType) Validate() error {
	switch {
	case t.Provider == "" || t.Region == "" || t.Name == "":
		return fmt.Errorf("instance type %q: provider, region and name are required", t.Key())
	case t.VCPU <= 0 || t.VCPU > 1<<16:
		return fmt.Errorf("instance type %s: vcpu %d out of range", t.Key(), t.VCPU)
	case t.MemoryMiB <= 0 || t.MemoryMiB > 1<<34:
		return fmt.Errorf("instance type %s: memory %d MiB out of range", t.Key(), t.MemoryMiB)
	case t.DiskGB < 0 || t.DiskGB > 1<<30:
		return fmt.Errorf("instance type %s: disk %d GB out of range", t.Key(), t.DiskGB)
	case t.CPUKind != CPUShared && t.CPUKind != CPUDedicated:
		return fmt.Errorf("instance type %s: cpu kind %q", t.Key(), t.CPUKind)
	case !t.Arch.valid():
		return fmt.Errorf("instance type %s: arch %q", t.Key(), t.Arch)
	case t.Source != SourceSnapshot && t.Source != SourceLive:
		return fmt.Errorf("instance type %s: source %q", t.Key(), t.Source)
	}
	for _, p := range []Money{t.Hourly, t.Monthly} {
		if err := checkCurrency(p.Currency); err != nil {
			return fmt.Errorf("instance type %s: %w", t.Key(), err)
		}
		// A monthly price above a million units would be a parsing accident;
		// the bound also keeps fleet totals far from int64 overflow.
		if p.Nanos < 0 || p.Nanos > 1_000_000*NanosPerUnit {
			return fmt.Errorf("instance type %s: price %s out of range", t.Key(), p)
		}
	}
	if t.Hourly.Currency != t.Monthly.Currency {
		return fmt.Errorf("instance type %s: hourly and monthly prices in different currencies", t.Key())
	}
	return nil
}
