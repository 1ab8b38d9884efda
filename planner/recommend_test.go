package planner

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var planningDay = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func setupRecommend(t testing.TB) Catalog {
	t.Helper()
	c, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRecommendSnapshot(t *testing.T) {
	t.Parallel()
	c := setupRecommend(t)
	paper, _ := TemplateByName("minecraft-java-paper")

	t.Run("paper servers on hetzner", func(t *testing.T) {
		t.Parallel()
		req, err := paper.Requirement(20, 10) // 1 core, 6560 MiB, 20 GiB each
		if err != nil {
			t.Fatal(err)
		}
		res, err := Recommend(c, req, Options{Providers: []string{"hetzner"}, Regions: []string{"fsn1"}, Now: planningDay})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Options) == 0 {
			t.Fatalf("no options; rejections %+v", res.Rejections)
		}
		first := res.Options[0]
		// cax31 (8 vCPU, 16 GiB, 0.013/h) holds 2 per node: 5 nodes × 9.49 = 47.45.
		if first.Type != "cax31" || first.Nodes != 5 || first.InstancesPerNode != 2 || first.TotalMonthly.String() != "47.45 EUR" {
			t.Errorf("first option %s ×%d (%d per node) %s", first.Type, first.Nodes, first.InstancesPerNode, first.TotalMonthly)
		}
		if first.PerInstanceMonthly.String() != "4.745 EUR" || first.LimitedBy != "memory" {
			t.Errorf("per instance %s limited by %s", first.PerInstanceMonthly, first.LimitedBy)
		}
		for _, o := range res.Options {
			if o.Status != StatusAvailable || o.Region != "fsn1" || o.Provider != "hetzner" {
				t.Errorf("option %+v", o)
			}
		}
		if !hasRejection(res, "cx22", "unavailable") || !hasRejection(res, "cx23", "insufficient memory") {
			t.Errorf("rejections %+v", res.Rejections)
		}
		if res.Rates.Rates["EUR"] != "1" || res.Currency != "EUR" || res.HeadroomPercent != DefaultHeadroomPercent {
			t.Errorf("result header %+v", res)
		}
	})

	t.Run("arm excluded for x86-only games", func(t *testing.T) {
		t.Parallel()
		valheim, _ := TemplateByName("valheim")
		req, _ := valheim.Requirement(10, 4)
		res, err := Recommend(c, req, Options{Providers: []string{"hetzner", "aws"}, Now: planningDay})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Options {
			if o.Arch != ArchX86 {
				t.Errorf("%s is %s", o.Type, o.Arch)
			}
		}
		if !hasRejection(res, "cax11", "arch: the workload runs on x86") {
			t.Error("cax11 not rejected for arch")
		}
	})

	// Conversions worked by hand from the snapshot and DefaultRates (1 EUR
	// = 1.16 USD), for 3 instances of 1 core, 2 GiB and 10 GiB (10240 MiB)
	// at the default 10% headroom after the 0.1 core, 512 MiB and 4 GiB
	// overhead of each node.
	type want struct {
		region                           string
		typ                              string
		nodes, perNode                   int
		limitedBy                        string
		listed, node, total, perInstance string
	}
	conversions := []struct {
		name  string
		opts  Options
		rates map[string]string
		want  []want
	}{
		{
			// Dedicated types, answered in USD. ccx23 (4 vCPU, 16 GiB,
			// 160 GB, 24.49 EUR a month): cpu (4000−100)×0.9 = 3510m holds 3,
			// memory (16384−512)×0.9 = 14284 MiB holds 6, disk
			// (163840−4096)×0.9 = 143769 MiB holds 14: one node of 3.
			// 24.49 × 1.16 = 28.4084 USD; per instance 28.4084 / 3 =
			// 9.4694666… → 9.469466667. Every other dedicated fleet costs
			// more (ccx13 holds 1 per node: 3 × 12.49 × 1.16 = 43.4652 USD;
			// c7g.xlarge 0.145 × 730 + 50 × 0.08 = 109.85 USD), so the limit
			// of 3 is ccx23 in its three regions, by name.
			"EUR list prices in USD",
			Options{Currency: "USD", DedicatedCPU: ptr(true), Now: planningDay, Limit: 3},
			map[string]string{"EUR": "1", "USD": "1.16"},
			[]want{
				{"fsn1", "ccx23", 1, 3, "cpu", "24.49 EUR", "28.4084 USD", "28.4084 USD", "9.469466667 USD"},
				{"hel1", "ccx23", 1, 3, "cpu", "24.49 EUR", "28.4084 USD", "28.4084 USD", "9.469466667 USD"},
				{"nbg1", "ccx23", 1, 3, "cpu", "24.49 EUR", "28.4084 USD", "28.4084 USD", "9.469466667 USD"},
			},
		},
		{
			// Dedicated x86 in us-east-1, answered in EUR. c7i.xlarge
			// (4 vCPU, 8 GiB, 50 GB root): 0.1785 × 730 = 130.305 + 50 GB ×
			// 0.08 = 134.305 USD a month; cpu 3510m holds 3, memory
			// (8192−512)×0.9 = 6912 MiB holds 3, disk (51200−4096)×0.9 =
			// 42393 MiB holds 4: one node of 3, limited by cpu (listed
			// first on a tie). 134.305 / 1.16 = 115.78017241379… →
			// 115.780172414 (half up); per instance / 3 = 38.59339080466… →
			// 38.593390805. c7i.large holds 1: 3 × (0.08925 × 730 + 4) =
			// 207.4575 USD, dearer.
			"USD list prices in EUR",
			Options{Providers: []string{"aws"}, Regions: []string{"us-east-1"}, DedicatedCPU: ptr(true), Arch: ArchX86, Now: planningDay, Limit: 1},
			map[string]string{"EUR": "1", "USD": "1.16"},
			[]want{
				{"us-east-1", "c7i.xlarge", 1, 3, "cpu", "134.305 USD", "115.780172414 EUR", "115.780172414 EUR", "38.593390805 EUR"},
			},
		},
	}
	for _, tt := range conversions {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := NewRequirement(1, 2, 10, 3)
			res, err := Recommend(c, req, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.Rates.Rates) != fmt.Sprint(tt.rates) {
				t.Errorf("rates used %v, want %v", res.Rates.Rates, tt.rates)
			}
			var got []want
			for _, o := range res.Options {
				got = append(got, want{o.Region, o.Type, o.Nodes, o.InstancesPerNode, o.LimitedBy,
					o.NodeMonthlyListed.String(), o.NodeMonthly.String(), o.TotalMonthly.String(), o.PerInstanceMonthly.String()})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}

	t.Run("deprecated included when asked", func(t *testing.T) {
		t.Parallel()
		req, _ := NewRequirement(1, 1, 10, 1)
		res, err := Recommend(c, req, Options{Providers: []string{"hetzner"}, IncludeDeprecated: true, Now: planningDay})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, o := range res.Options {
			if o.Type == "cx22" {
				found = o.Status == StatusUnavailable
			}
		}
		if !found {
			t.Error("cx22 not offered as unavailable")
		}
	})

	t.Run("no fit is an empty answer with reasons", func(t *testing.T) {
		t.Parallel()
		req, _ := NewRequirement(4, 512, 10, 1)
		res, err := Recommend(c, req, Options{Now: planningDay})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Options) != 0 || len(res.Rejections) == 0 {
			t.Fatalf("options %d rejections %d", len(res.Options), len(res.Rejections))
		}
		regions := 0
		for _, r := range res.Rejections {
			regions += len(r.Regions)
			if !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, "insufficient memory") }) {
				t.Errorf("%s/%s: %v", r.Provider, r.Type, r.Reasons)
			}
		}
		if regions != res.Considered || res.Considered != len(c.Types) {
			t.Errorf("rejections cover %d of %d considered (%d types)", regions, res.Considered, len(c.Types))
		}
	})

	t.Run("budget", func(t *testing.T) {
		t.Parallel()
		req, _ := NewRequirement(1, 2, 10, 100)
		max := mustMoney(t, "50", "EUR")
		res, err := Recommend(c, req, Options{MaxMonthlyPrice: &max, Now: planningDay, Providers: []string{"hetzner", "aws"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Options) != 0 || !hasRejection(res, "cax11", "over max_monthly_price") {
			t.Errorf("options %+v", res.Options)
		}
	})

	t.Run("priced-less region", func(t *testing.T) {
		t.Parallel()
		req, _ := NewRequirement(1, 1, 10, 1)
		res, err := Recommend(c, req, Options{Regions: []string{"sin"}, Now: planningDay})
		if err != nil || len(res.Options) != 0 || res.Considered != 0 {
			t.Errorf("sin: %v %+v", err, res)
		}
	})
}

func TestRecommendValidation(t *testing.T) {
	t.Parallel()
	c := setupRecommend(t)
	ok, _ := NewRequirement(1, 1, 1, 1)
	tests := []struct {
		name  string
		req   Requirement
		opts  Options
		field string
	}{
		{"zero cpu", Requirement{Per: Resources{0, 1024, 1024}, Count: 1}, Options{}, "cpu"},
		{"negative memory", Requirement{Per: Resources{1000, -1, 1024}, Count: 1}, Options{}, "memory_gb"},
		{"zero disk", Requirement{Per: Resources{1000, 1024, 0}, Count: 1}, Options{}, "disk_gb"},
		{"zero count", Requirement{Per: Resources{1000, 1024, 1024}}, Options{}, "count"},
		{"count over 10000", Requirement{Per: Resources{1000, 1024, 1024}, Count: 10_001}, Options{}, "count"},
		{"unknown provider", ok, Options{Providers: []string{"ovh"}}, "providers"},
		{"unknown region", ok, Options{Regions: []string{"mars-1"}}, "regions"},
		{"region of another provider", ok, Options{Providers: []string{"aws"}, Regions: []string{"fsn1"}}, "regions"},
		{"unknown currency", ok, Options{Currency: "JPY"}, "currency"},
		{"bad arch", ok, Options{Arch: "sparc"}, "arch"},
		{"headroom", ok, Options{HeadroomPercent: ptr(95)}, "headroom_percent"},
		{"negative headroom", ok, Options{HeadroomPercent: ptr(-1)}, "headroom_percent"},
		{"zero budget", ok, Options{MaxMonthlyPrice: &Money{Currency: "EUR"}}, "max_monthly_price"},
		{"limit", ok, Options{Limit: -1}, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Recommend(c, tt.req, tt.opts)
			assertField(t, err, tt.field)
		})
	}
	for _, tt := range []struct {
		cpu, mem, disk float64
		count          int
		field          string
	}{
		{-1, 1, 1, 1, "cpu"}, {0, 1, 1, 1, "cpu"}, {1, 0, 1, 1, "memory_gb"}, {1, 1, -5, 1, "disk_gb"},
		{1, 1, 1, 0, "count"}, {1, 1, 1, 20_000, "count"}, {1e9, 1, 1, 1, "cpu"},
	} {
		_, err := NewRequirement(tt.cpu, tt.mem, tt.disk, tt.count)
		assertField(t, err, tt.field)
	}
	r, err := NewRequirement(0.1, 1.5, 0.3, 1)
	if err != nil || r.Per != (Resources{100, 1536, 308}) {
		t.Errorf("units %+v %v", r.Per, err)
	}
}

// TestRecommendProperties checks Recommend against a brute force over
// random catalogs and requirements.
func TestRecommendProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 2026))
	rates := DefaultRates()
	for i := range 300 {
		cat, req, opts := randomCase(t, rng, rates)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			res, err := Recommend(cat, req, opts)
			if err != nil {
				t.Fatalf("recommend: %v", err)
			}
			s, _ := opts.settle(cat)
			byKey := map[string]InstanceType{}
			for _, it := range cat.Types {
				byKey[it.Key()] = it
			}
			rejected := 0
			for _, r := range res.Rejections {
				rejected += len(r.Regions)
			}
			if rejected+len(res.Options) != res.Considered {
				t.Errorf("%d rejected + %d options != %d considered", rejected, len(res.Options), res.Considered)
			}
			for j, o := range res.Options {
				it := byKey[o.Provider+"/"+o.Region+"/"+o.Type]
				checkFits(t, it, o, req, s)
				checkTotals(t, o, req)
				if j > 0 && compareOptions(res.Options[j-1], o) > 0 {
					t.Errorf("options %d and %d out of order", j-1, j)
				}
			}
			best, bestNodes, found := bruteForce(cat, req, s)
			switch {
			case !found && len(res.Options) > 0:
				t.Errorf("brute force finds nothing, Recommend offers %s", res.Options[0].Type)
			case found && len(res.Options) == 0:
				t.Errorf("brute force finds %s, Recommend offers nothing: %+v", best, res.Rejections)
			case found && res.Options[0].TotalMonthly != best:
				t.Errorf("first option %s ×%d costs %s; brute force finds %s ×%d",
					res.Options[0].Type, res.Options[0].Nodes, res.Options[0].TotalMonthly, best, bestNodes)
			}
		})
	}
}

// checkFits places the instances one by one, independently of perNode.
func checkFits(t *testing.T, it InstanceType, o Option, req Requirement, s settings) {
	t.Helper()
	usable := Usable(it.Capacity(), s.overhead, s.headroom)
	nodes, free := 0, Resources{}
	for range req.Count {
		if !free.Covers(req.Per) {
			nodes++
			free = usable
			if !free.Covers(req.Per) {
				t.Fatalf("%s: one instance %v does not fit usable %v", it.Key(), req.Per, usable)
			}
		}
		free = free.Sub(req.Per)
	}
	if nodes != o.Nodes {
		t.Errorf("%s: placing gives %d nodes, option says %d", it.Key(), nodes, o.Nodes)
	}
	if !usable.Covers(req.Per.Scale(int64(o.InstancesPerNode))) {
		t.Errorf("%s: %d per node do not fit %v", it.Key(), o.InstancesPerNode, usable)
	}
	if (s.Arch != "" && it.Arch != s.Arch) || !req.allowsArch(it.Arch) ||
		(it.StatusAt(s.Now) != StatusAvailable && !s.IncludeDeprecated) ||
		(s.DedicatedCPU != nil && *s.DedicatedCPU != (it.CPUKind == CPUDedicated)) {
		t.Errorf("%s offered against the filters", it.Key())
	}
}

// checkTotals: the total is the sum of the node prices, exactly.
func checkTotals(t *testing.T, o Option, req Requirement) {
	t.Helper()
	sum := Money{Currency: o.NodeMonthly.Currency}
	for range o.Nodes {
		var err error
		if sum, err = sum.Add(o.NodeMonthly); err != nil {
			t.Fatal(err)
		}
	}
	if sum != o.TotalMonthly {
		t.Errorf("%s: total %s, sum of nodes %s", o.Type, o.TotalMonthly, sum)
	}
	// Per instance is the total shared out, rounded half up to the nano.
	n := int64(req.Count)
	lo, hi := o.PerInstanceMonthly.Nanos*n-n/2, o.PerInstanceMonthly.Nanos*n+n/2
	if o.TotalMonthly.Nanos < lo || o.TotalMonthly.Nanos > hi {
		t.Errorf("%s: per instance %s × %d far from %s", o.Type, o.PerInstanceMonthly, n, o.TotalMonthly)
	}
}

// bruteForce tries every node count for every type passing the filters.
func bruteForce(cat Catalog, req Requirement, s settings) (Money, int, bool) {
	var best Money
	bestNodes, found := 0, false
	for _, it := range cat.Types {
		if (len(s.Providers) > 0 && !slices.Contains(s.Providers, it.Provider)) ||
			(len(s.Regions) > 0 && !slices.Contains(s.Regions, it.Region)) ||
			(s.Arch != "" && it.Arch != s.Arch) || !req.allowsArch(it.Arch) ||
			(it.StatusAt(s.Now) != StatusAvailable && !s.IncludeDeprecated) ||
			(s.DedicatedCPU != nil && *s.DedicatedCPU != (it.CPUKind == CPUDedicated)) {
			continue
		}
		usable := Usable(it.Capacity(), s.overhead, s.headroom)
		per := 0
		for usable.Covers(req.Per.Scale(int64(per + 1))) {
			per++
		}
		if per == 0 {
			continue
		}
		price, ok := convertExactly(s.Rates, it.Monthly, s.Currency)
		if !ok {
			continue
		}
		for nodes := 1; nodes <= req.Count; nodes++ {
			if nodes*per < req.Count {
				continue
			}
			total := Money{Nanos: price.Nanos * int64(nodes), Currency: s.Currency}
			if s.maxTotal != nil && total.Nanos > s.maxTotal.Nanos {
				break
			}
			if !found || total.Nanos < best.Nanos {
				best, bestNodes, found = total, nodes, true
			}
			break
		}
	}
	return best, bestNodes, found
}

// convertExactly converts m the way RateTable documents it, independently
// of RateTable.Convert: m × rate(to) / rate(from) as an exact fraction
// (math/big), rounded half up once to the nano. m must not be negative.
func convertExactly(rates RateTable, m Money, to string) (Money, bool) {
	from, okFrom := rates.Rates[m.Currency]
	into, okTo := rates.Rates[to]
	if !okFrom || !okTo {
		return Money{}, false
	}
	num := new(big.Int).Mul(big.NewInt(m.Nanos), big.NewInt(into))
	den := big.NewInt(from)
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if rem.Lsh(rem, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	return Money{Nanos: q.Int64(), Currency: to}, q.IsInt64()
}

func randomCase(t *testing.T, rng *rand.Rand, rates RateTable) (Catalog, Requirement, Options) {
	t.Helper()
	providers := []string{"p1", "p2", "p3"}
	regions := []string{"r1", "r2"}
	var types []InstanceType
	for i := range 5 + rng.IntN(30) {
		vcpu := 1 + rng.IntN(32)
		currency := []string{"EUR", "USD", "GBP"}[rng.IntN(3)]
		monthly := Money{Nanos: rng.Int64N(500 * NanosPerUnit), Currency: currency}
		it := InstanceType{
			Provider: providers[rng.IntN(len(providers))], Region: regions[rng.IntN(len(regions))],
			Name: fmt.Sprintf("t%d", i), VCPU: vcpu, CPUKind: []CPUKind{CPUShared, CPUDedicated}[rng.IntN(2)],
			Arch: []Arch{ArchX86, ArchARM}[rng.IntN(2)], MemoryMiB: 512 * int64(1+rng.IntN(128)), DiskGB: int64(5 + rng.IntN(400)),
			Hourly: Money{Nanos: monthly.Nanos / HoursPerMonth, Currency: currency}, Monthly: monthly,
			Source: SourceLive, ReadAt: planningDay,
		}
		if rng.IntN(6) == 0 {
			it.Deprecation = &Deprecation{Announced: planningDay.AddDate(0, -2, 0), UnavailableAfter: planningDay.AddDate(0, rng.IntN(3)-1, 0)}
		}
		types = append(types, it)
	}
	cat, err := NewCatalog(SourceLive, planningDay, types)
	if err != nil {
		t.Fatal(err)
	}
	req := Requirement{
		Per:   Resources{MilliCPU: 100 + rng.Int64N(8000), MemoryMiB: 128 + rng.Int64N(32*1024), DiskMiB: 1024 + rng.Int64N(100*1024)},
		Count: 1 + rng.IntN(200),
	}
	if rng.IntN(3) == 0 {
		req.Arch = []Arch{ArchX86}
	}
	opts := Options{Rates: rates, Now: planningDay, Currency: []string{"", "EUR", "USD"}[rng.IntN(3)], HeadroomPercent: ptr(rng.IntN(40))}
	if rng.IntN(3) == 0 {
		opts.Providers = []string{cat.Types[0].Provider}
	}
	if rng.IntN(4) == 0 {
		opts.Regions = []string{cat.Types[len(cat.Types)-1].Region}
	}
	if rng.IntN(4) == 0 {
		opts.Arch = ArchARM
	}
	if rng.IntN(4) == 0 {
		opts.DedicatedCPU = ptr(rng.IntN(2) == 0)
	}
	if rng.IntN(4) == 0 {
		opts.MaxMonthlyPrice = &Money{Nanos: 1 + rng.Int64N(5000*NanosPerUnit), Currency: "EUR"}
	}
	opts.IncludeDeprecated = rng.IntN(3) == 0
	return cat, req, opts
}

func hasRejection(res Result, typ, reason string) bool {
	for _, r := range res.Rejections {
		if r.Type == typ && slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, reason) }) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
