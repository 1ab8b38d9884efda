package planner

import (
	"math"
	"slices"
)

// Limits on a requirement.
const (
	MaxCount     = 10_000             // instances per request
	maxMilliCPU  = 1024 * 1000        // 1024 cores per instance
	maxMemoryMiB = 16 * 1024 * 1024   // 16 TiB per instance
	maxDiskMiB   = 1024 * 1024 * 1024 // 1 PiB per instance
)

// Requirement is what a workload needs: Count instances of Per each, on one
// of the architectures in Arch (any when empty).
type Requirement struct {
	Per      Resources `json:"per_instance"`
	Count    int       `json:"count"`
	Arch     []Arch    `json:"arch,omitempty"`
	Template string    `json:"template,omitempty"` // set when derived from a template
	Players  int       `json:"players,omitempty"`
}

// NewRequirement builds a requirement from the API's units: cpu in cores,
// memory and disk in GB (GiB). Fractions round up to the next millicore or
// MiB. Errors name the request field.
func NewRequirement(cpu, memoryGB, diskGB float64, count int) (Requirement, error) {
	r := Requirement{Count: count}
	var err error
	if r.Per.MilliCPU, err = toUnits("cpu", cpu, 1000, maxMilliCPU); err != nil {
		return Requirement{}, err
	}
	if r.Per.MemoryMiB, err = toUnits("memory_gb", memoryGB, 1024, maxMemoryMiB); err != nil {
		return Requirement{}, err
	}
	if r.Per.DiskMiB, err = toUnits("disk_gb", diskGB, 1024, maxDiskMiB); err != nil {
		return Requirement{}, err
	}
	if err := r.Validate(); err != nil {
		return Requirement{}, err
	}
	return r, nil
}

// toUnits converts v (cores, GB) to integer units, rounding up; values that
// are within 1e-9 of a whole unit are not pushed over it by float noise
// (0.1 cores is 100 millicores, not 101).
func toUnits(field string, v float64, per, limit int64) (int64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0, invalid(field, "must be positive")
	}
	u := v * float64(per)
	if u > float64(limit) {
		return 0, invalid(field, "must be at most %d", limit/per)
	}
	if r := math.Round(u); math.Abs(u-r) < 1e-9 {
		u = r
	}
	return int64(math.Ceil(u)), nil
}

// Validate checks the requirement; errors name the request field.
func (r Requirement) Validate() error {
	switch {
	case r.Per.MilliCPU <= 0:
		return invalid("cpu", "must be positive")
	case r.Per.MilliCPU > maxMilliCPU:
		return invalid("cpu", "must be at most %d", maxMilliCPU/1000)
	case r.Per.MemoryMiB <= 0:
		return invalid("memory_gb", "must be positive")
	case r.Per.MemoryMiB > maxMemoryMiB:
		return invalid("memory_gb", "must be at most %d", maxMemoryMiB/1024)
	case r.Per.DiskMiB <= 0:
		return invalid("disk_gb", "must be positive")
	case r.Per.DiskMiB > maxDiskMiB:
		return invalid("disk_gb", "must be at most %d", maxDiskMiB/1024)
	case r.Count <= 0:
		return invalid("count", "must be positive")
	case r.Count > MaxCount:
		return invalid("count", "must be at most %d", MaxCount)
	}
	for _, a := range r.Arch {
		if !a.valid() {
			return invalid("arch", "must be x86 or arm")
		}
	}
	return nil
}

// allowsArch reports whether the requirement runs on a.
func (r Requirement) allowsArch(a Arch) bool {
	return len(r.Arch) == 0 || slices.Contains(r.Arch, a)
}
