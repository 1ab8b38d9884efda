package planner

import (
	"fmt"
	"math"
)

// Resources is an amount of compute: CPU in millicores, memory and disk in
// MiB. It is used for capacities, reservations and per-instance needs.
type Resources struct {
	MilliCPU  int64 `json:"milli_cpu"`
	MemoryMiB int64 `json:"memory_mib"`
	DiskMiB   int64 `json:"disk_mib"`
}

// Add returns r+o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.MemoryMiB + o.MemoryMiB, r.DiskMiB + o.DiskMiB}
}

// Sub returns r-o (components may go negative: an overcommitted node).
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.MemoryMiB - o.MemoryMiB, r.DiskMiB - o.DiskMiB}
}

// Scale returns r×n.
func (r Resources) Scale(n int64) Resources {
	return Resources{r.MilliCPU * n, r.MemoryMiB * n, r.DiskMiB * n}
}

// Covers reports whether r holds at least need in every resource.
func (r Resources) Covers(need Resources) bool {
	return r.MilliCPU >= need.MilliCPU && r.MemoryMiB >= need.MemoryMiB && r.DiskMiB >= need.DiskMiB
}

// String renders "2000m CPU, 4096 MiB memory, 40960 MiB disk".
func (r Resources) String() string {
	return fmt.Sprintf("%dm CPU, %d MiB memory, %d MiB disk", r.MilliCPU, r.MemoryMiB, r.DiskMiB)
}

// Utilisation is the used fraction of each resource, 0 to 1 (above 1 when
// overcommitted). It is for display and ranking, never for money.
type Utilisation struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
	Disk   float64 `json:"disk"`
}

// utilisation returns used/capacity per resource (0 where capacity is 0).
func utilisation(used, capacity Resources) Utilisation {
	f := func(u, c int64) float64 {
		if c <= 0 {
			return 0
		}
		return float64(u) / float64(c)
	}
	return Utilisation{f(used.MilliCPU, capacity.MilliCPU), f(used.MemoryMiB, capacity.MemoryMiB), f(used.DiskMiB, capacity.DiskMiB)}
}

// Imbalance is the population standard deviation of the three fractions:
// 0 when CPU, memory and disk are used evenly. Kubernetes'
// BalancedAllocation scores (1 - Imbalance) × 100.
func (u Utilisation) Imbalance() float64 {
	mean := (u.CPU + u.Memory + u.Disk) / 3
	d1, d2, d3 := u.CPU-mean, u.Memory-mean, u.Disk-mean
	return math.Sqrt((d1*d1 + d2*d2 + d3*d3) / 3)
}
