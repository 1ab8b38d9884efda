package planner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultHeadroomPercent is the share of a node's capacity, after the OS
// overhead, kept free when the request does not say.
const DefaultHeadroomPercent = 10

// maxHeadroomPercent bounds headroom_percent.
const maxHeadroomPercent = 90

// DefaultOverhead is what each node keeps for its operating system and
// agent before any game server: 0.1 core, 512 MiB memory, 4 GiB disk.
func DefaultOverhead() Resources { return Resources{MilliCPU: 100, MemoryMiB: 512, DiskMiB: 4096} }

// Options narrow and shape a recommendation. The zero value asks for every
// available type in every region, priced in EUR with DefaultRates.
type Options struct {
	Providers    []string // only these providers; empty: all
	Regions      []string // only these regions; empty: all
	Arch         Arch     // only this architecture; empty: any the requirement allows
	DedicatedCPU *bool    // true: dedicated vCPUs only; false: shared only; nil: either
	// MaxMonthlyPrice caps an option's total monthly cost (the whole fleet),
	// in any currency the rate table knows.
	MaxMonthlyPrice   *Money
	Currency          string     // answer currency; empty: DefaultCurrency
	Rates             RateTable  // zero value: DefaultRates()
	HeadroomPercent   *int       // nil: DefaultHeadroomPercent
	Overhead          *Resources // per node; nil: DefaultOverhead()
	IncludeDeprecated bool       // also offer deprecated and unavailable types
	Now               time.Time  // for deprecation status (the caller's clock); zero: the catalog's ReadAt
	Limit             int        // at most this many options; 0: all
}

// Option is one way to run the requirement: a fleet of Nodes nodes of one
// instance type in one region.
type Option struct {
	Rank             int          `json:"rank"`
	Provider         string       `json:"provider"`
	Region           string       `json:"region"`
	Type             string       `json:"type"`
	VCPU             int          `json:"vcpu"`
	CPUKind          CPUKind      `json:"cpu_kind"`
	Arch             Arch         `json:"arch"`
	MemoryMiB        int64        `json:"memory_mib"`
	DiskGB           int64        `json:"disk_gb"`
	Status           Status       `json:"status"`
	Deprecation      *Deprecation `json:"deprecation,omitempty"`
	InstancesPerNode int          `json:"instances_per_node"`
	LimitedBy        string       `json:"limited_by"` // the resource that caps instances per node
	Nodes            int          `json:"nodes"`
	// NodeMonthly is one node's monthly price in the answer currency,
	// converted once (half up) from NodeMonthlyListed.
	NodeMonthly       Money `json:"node_monthly"`
	NodeMonthlyListed Money `json:"node_monthly_listed"` // in the provider's currency
	// TotalMonthly is exactly NodeMonthly × Nodes.
	TotalMonthly Money `json:"total_monthly"`
	// PerInstanceMonthly is TotalMonthly ÷ count, rounded half up to the nano.
	PerInstanceMonthly Money       `json:"per_instance_monthly"`
	Utilisation        Utilisation `json:"utilisation"` // of the fleet's raw capacity
	Imbalance          float64     `json:"imbalance"`   // see Utilisation.Imbalance; lower is better
	VATIncluded        bool        `json:"vat_included"`
	PriceSource        Source      `json:"price_source"`
	PriceReadAt        time.Time   `json:"price_read_at"`
	PriceNote          string      `json:"price_note,omitempty"`
}

// Rejection explains why an instance type (in the listed regions) offers
// no option.
type Rejection struct {
	Provider string   `json:"provider"`
	Type     string   `json:"type"`
	Regions  []string `json:"regions"`
	Reasons  []string `json:"reasons"`
}

// Result is a recommendation: ranked options, and why every other
// considered type was rejected. An empty Options with Rejections is an
// answer, not an error.
type Result struct {
	Requirement     Requirement `json:"requirement"`
	Currency        string      `json:"currency"`
	Rates           UsedRates   `json:"rates"`
	CatalogSource   Source      `json:"catalog_source"`
	CatalogReadAt   time.Time   `json:"catalog_read_at"`
	HeadroomPercent int         `json:"headroom_percent"`
	Overhead        Resources   `json:"overhead_per_node"`
	Considered      int         `json:"considered"` // types in the selected providers and regions
	Options         []Option    `json:"options"`
	Rejections      []Rejection `json:"rejections"`
}

// settings are validated Options with defaults filled in.
type settings struct {
	Options
	headroom int
	overhead Resources
	maxTotal *Money // in the answer currency
}

func (o Options) settle(c Catalog) (settings, error) {
	s := settings{Options: o, headroom: DefaultHeadroomPercent, overhead: DefaultOverhead()}
	if s.Rates.Rates == nil {
		s.Rates = DefaultRates()
	}
	if s.Currency == "" {
		s.Currency = DefaultCurrency
	}
	if s.Now.IsZero() {
		s.Now = c.ReadAt
	}
	if !s.Rates.Knows(s.Currency) {
		return settings{}, invalid("currency", "no exchange rate for %q (known: %s)", s.Currency, strings.Join(s.Rates.Currencies(), ", "))
	}
	for _, p := range o.Providers {
		if !c.HasProvider(p) {
			return settings{}, invalid("providers", "unknown provider %q", p)
		}
	}
	for _, r := range o.Regions {
		if !c.HasRegion(r, o.Providers) {
			return settings{}, invalid("regions", "unknown region %q", r)
		}
	}
	if o.Arch != "" && !o.Arch.valid() {
		return settings{}, invalid("arch", "must be x86 or arm")
	}
	if o.HeadroomPercent != nil {
		if h := *o.HeadroomPercent; h < 0 || h > maxHeadroomPercent {
			return settings{}, invalid("headroom_percent", "must be between 0 and %d", maxHeadroomPercent)
		}
		s.headroom = *o.HeadroomPercent
	}
	if o.Overhead != nil {
		if v := *o.Overhead; v.MilliCPU < 0 || v.MemoryMiB < 0 || v.DiskMiB < 0 {
			return settings{}, invalid("overhead", "must not be negative")
		}
		s.overhead = *o.Overhead
	}
	if o.MaxMonthlyPrice != nil {
		if o.MaxMonthlyPrice.Nanos <= 0 {
			return settings{}, invalid("max_monthly_price", "must be positive")
		}
		m, err := s.Rates.Convert(*o.MaxMonthlyPrice, s.Currency)
		if err != nil {
			return settings{}, invalid("max_monthly_price", "no exchange rate for %q", o.MaxMonthlyPrice.Currency)
		}
		s.maxTotal = &m
	}
	if o.Limit < 0 {
		return settings{}, invalid("limit", "must not be negative")
	}
	return s, nil
}

// Usable is what one node of capacity c offers to game servers: c minus the
// OS overhead, then minus headroomPercent of the rest (rounded down).
func Usable(c, overhead Resources, headroomPercent int) Resources {
	f := func(v, o int64) int64 {
		v -= o
		if v <= 0 {
			return 0
		}
		return v * int64(100-headroomPercent) / 100
	}
	return Resources{f(c.MilliCPU, overhead.MilliCPU), f(c.MemoryMiB, overhead.MemoryMiB), f(c.DiskMiB, overhead.DiskMiB)}
}

// perNode is how many instances of need fit in usable, and which resource
// limits it. need's components must be positive.
func perNode(usable, need Resources) (int64, string) {
	n, by := usable.MilliCPU/need.MilliCPU, "cpu"
	if m := usable.MemoryMiB / need.MemoryMiB; m < n {
		n, by = m, "memory"
	}
	if d := usable.DiskMiB / need.DiskMiB; d < n {
		n, by = d, "disk"
	}
	return n, by
}

// Recommend ranks the fleets of one instance type that can run req: by
// total monthly cost in the answer currency, then fewer nodes, then
// balanced utilisation (then provider, region and type, for a stable
// order). Every type in the selected providers and regions that offers no
// option is listed in Rejections with its reasons. Bad input is a
// *domain.ValidationError naming the field.
func Recommend(c Catalog, req Requirement, opts Options) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	s, err := opts.settle(c)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Requirement: req, Currency: s.Currency, CatalogSource: c.Source, CatalogReadAt: c.ReadAt,
		HeadroomPercent: s.headroom, Overhead: s.overhead,
		Options: []Option{}, Rejections: []Rejection{},
	}
	currencies := []string{s.Currency}
	rejected := map[string]int{} // group key → index in res.Rejections
	var reasons []string
	for _, t := range c.Types {
		if (len(s.Providers) > 0 && !slices.Contains(s.Providers, t.Provider)) ||
			(len(s.Regions) > 0 && !slices.Contains(s.Regions, t.Region)) {
			continue
		}
		res.Considered++
		if !slices.Contains(currencies, t.Monthly.Currency) {
			currencies = append(currencies, t.Monthly.Currency)
		}
		reasons = reasons[:0]
		if !req.allowsArch(t.Arch) {
			reasons = append(reasons, fmt.Sprintf("arch: the workload runs on %s, the type is %s", joinArch(req.Arch), t.Arch))
		}
		if s.Arch != "" && t.Arch != s.Arch {
			reasons = append(reasons, fmt.Sprintf("arch: %s asked, the type is %s", s.Arch, t.Arch))
		}
		if s.DedicatedCPU != nil && *s.DedicatedCPU != (t.CPUKind == CPUDedicated) {
			reasons = append(reasons, fmt.Sprintf("cpu kind: %s vCPUs, dedicated_cpu=%t asked", t.CPUKind, *s.DedicatedCPU))
		}
		status := t.StatusAt(s.Now)
		if status != StatusAvailable && !s.IncludeDeprecated {
			reasons = append(reasons, deprecationReason(status, t.Deprecation))
		}
		usable := Usable(t.Capacity(), s.overhead, s.headroom)
		per, limitedBy := perNode(usable, req.Per)
		if per == 0 {
			reasons = appendShortfalls(reasons, usable, req.Per, s)
		}
		if !s.Rates.Knows(t.Monthly.Currency) {
			reasons = append(reasons, fmt.Sprintf("price: no exchange rate for %s", t.Monthly.Currency))
		}
		var o Option
		if len(reasons) == 0 {
			o, err = option(t, status, req, per, limitedBy, s)
			if err != nil {
				return Result{}, fmt.Errorf("recommend %s: %w", t.Key(), err)
			}
			if s.maxTotal != nil && o.TotalMonthly.Cmp(*s.maxTotal) > 0 {
				reasons = append(reasons, fmt.Sprintf("price: %d nodes cost %s a month, over max_monthly_price %s",
					o.Nodes, o.TotalMonthly, *s.maxTotal))
			}
		}
		if len(reasons) > 0 {
			key := t.Provider + "\x00" + t.Name + "\x00" + strings.Join(reasons, "\x00")
			if i, ok := rejected[key]; ok {
				res.Rejections[i].Regions = append(res.Rejections[i].Regions, t.Region)
				continue
			}
			rejected[key] = len(res.Rejections)
			res.Rejections = append(res.Rejections, Rejection{
				Provider: t.Provider, Type: t.Name, Regions: []string{t.Region}, Reasons: slices.Clone(reasons),
			})
			continue
		}
		res.Options = append(res.Options, o)
	}
	slices.SortFunc(res.Options, compareOptions)
	if s.Limit > 0 && len(res.Options) > s.Limit {
		res.Options = res.Options[:s.Limit]
	}
	for i := range res.Options {
		res.Options[i].Rank = i + 1
	}
	slices.SortStableFunc(res.Rejections, func(a, b Rejection) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Type, b.Type))
	})
	res.Rates = s.Rates.Used(currencies...)
	return res, nil
}

// option prices a fleet of t for req, per instances fitting on each node.
func option(t InstanceType, status Status, req Requirement, per int64, limitedBy string, s settings) (Option, error) {
	count := int64(req.Count)
	nodes := (count + per - 1) / per
	nodeMonthly, err := s.Rates.Convert(t.Monthly, s.Currency)
	if err != nil {
		return Option{}, err
	}
	total, err := nodeMonthly.Mul(nodes)
	if err != nil {
		return Option{}, err
	}
	perInstance, err := total.Div(count)
	if err != nil {
		return Option{}, err
	}
	u := utilisation(req.Per.Scale(count), t.Capacity().Scale(nodes))
	return Option{
		Provider: t.Provider, Region: t.Region, Type: t.Name,
		VCPU: t.VCPU, CPUKind: t.CPUKind, Arch: t.Arch, MemoryMiB: t.MemoryMiB, DiskGB: t.DiskGB,
		Status: status, Deprecation: t.Deprecation,
		InstancesPerNode: int(min(per, count)), LimitedBy: limitedBy, Nodes: int(nodes),
		NodeMonthly: nodeMonthly, NodeMonthlyListed: t.Monthly, TotalMonthly: total, PerInstanceMonthly: perInstance,
		Utilisation: u, Imbalance: u.Imbalance(),
		VATIncluded: t.VATIncluded, PriceSource: t.Source, PriceReadAt: t.ReadAt, PriceNote: t.PriceNote,
	}, nil
}

func compareOptions(a, b Option) int {
	return cmp.Or(
		cmp.Compare(a.TotalMonthly.Nanos, b.TotalMonthly.Nanos),
		cmp.Compare(a.Nodes, b.Nodes),
		cmp.Compare(a.Imbalance, b.Imbalance),
		cmp.Compare(a.Provider, b.Provider),
		cmp.Compare(a.Region, b.Region),
		cmp.Compare(a.Type, b.Type),
	)
}

func appendShortfalls(reasons []string, usable, need Resources, s settings) []string {
	after := fmt.Sprintf("after the OS overhead and %d%% headroom", s.headroom)
	if usable.MilliCPU < need.MilliCPU {
		reasons = append(reasons, fmt.Sprintf("insufficient cpu: a node offers %dm %s, one instance needs %dm", usable.MilliCPU, after, need.MilliCPU))
	}
	if usable.MemoryMiB < need.MemoryMiB {
		reasons = append(reasons, fmt.Sprintf("insufficient memory: a node offers %d MiB %s, one instance needs %d MiB", usable.MemoryMiB, after, need.MemoryMiB))
	}
	if usable.DiskMiB < need.DiskMiB {
		reasons = append(reasons, fmt.Sprintf("insufficient disk: a node offers %d MiB %s, one instance needs %d MiB", usable.DiskMiB, after, need.DiskMiB))
	}
	return reasons
}

func joinArch(as []Arch) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = string(a)
	}
	return strings.Join(parts, " or ")
}

func deprecationReason(status Status, d *Deprecation) string {
	when := "announced " + d.Announced.Format(time.DateOnly)
	if !d.UnavailableAfter.IsZero() {
		when = "unavailable for order after " + d.UnavailableAfter.Format(time.DateOnly)
	}
	return fmt.Sprintf("%s: %s (ask to include deprecated types to see it)", status, when)
}
