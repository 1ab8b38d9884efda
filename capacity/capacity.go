// Package capacity is the capacity planner's service: it holds the pricing
// catalog (the embedded snapshot, parsed once) and the rate table, reads an
// organization's nodes with their aggregated reservations from the store, and
// hands plain data to the pure core in package planner. The API calls it for
// /v1/planner/*.
package capacity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// Limits of the answers.
const (
	DefaultLimit = 20     // options or nodes listed when the request says none
	MaxOptions   = 1000   // limit of recommend
	MaxNodes     = 10_000 // limit of suggest-fit
	maxLabels    = 64
)

// Config shapes the service. The zero value uses the planner's defaults.
type Config struct {
	Rates    planner.RateTable  // zero value: planner.DefaultRates()
	Overhead *planner.Resources // kept per node for the OS; nil: planner.DefaultOverhead()
	Now      func() time.Time   // nil: time.Now
	// Live lists the providers whose prices the pricing_refresh job reads
	// from their APIs (providers.HetznerPricing); none: the snapshot only.
	Live []PricingSource
	// Secrets opens an organization's default credential for a live
	// source (credentials.Service); needed with Live.
	Secrets SecretOpener
	// FleetSavingThresholdPercent: a fleet report proposes emptying nodes
	// only when that saves more than this share of the monthly cost.
	// nil: planner.DefaultSavingThresholdPercent (20).
	FleetSavingThresholdPercent *int
}

// Service answers the planner endpoints and runs the planner's jobs.
type Service struct {
	st        *store.Store
	q         *store.Queries
	catalog   planner.Catalog // the embedded snapshot
	rates     planner.RateTable
	overhead  planner.Resources
	now       func() time.Time
	live      []PricingSource
	secrets   SecretOpener
	threshold int
	queue     Queue
	cache     *catalogCache
	nodeCache *nodeCache
}

// New parses the embedded catalog snapshot once and builds the service.
func New(st *store.Store, cfg Config) (*Service, error) {
	c, err := planner.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("capacity: load pricing snapshot: %w", err)
	}
	s := &Service{st: st, q: st.Q, catalog: c, rates: cfg.Rates, overhead: planner.DefaultOverhead(), now: cfg.Now,
		live: cfg.Live, secrets: cfg.Secrets, threshold: planner.DefaultSavingThresholdPercent, cache: newCatalogCache(), nodeCache: newNodeCache()}
	if cfg.FleetSavingThresholdPercent != nil {
		if t := *cfg.FleetSavingThresholdPercent; t < 0 || t > 100 {
			return nil, fmt.Errorf("capacity: fleet saving threshold %d%%: must be from 0 to 100", t)
		}
		s.threshold = *cfg.FleetSavingThresholdPercent
	}
	if len(s.live) > 0 && s.secrets == nil {
		return nil, errors.New("capacity: live pricing sources need a secret opener (credentials)")
	}
	if s.rates.Rates == nil {
		s.rates = planner.DefaultRates()
	}
	if cfg.Overhead != nil {
		s.overhead = *cfg.Overhead
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

func need(p *domain.Principal) error { return needPerm(p, domain.PermPlannerRead) }

func needPerm(p *domain.Principal, perm domain.Permission) error {
	if p == nil || !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// Templates lists the built-in workload templates.
func (s *Service) Templates(_ context.Context, p *domain.Principal) ([]planner.Template, error) {
	if err := need(p); err != nil {
		return nil, err
	}
	return planner.Templates(), nil
}

// PricingQuery is the filter of GET /v1/planner/pricing.
type PricingQuery struct {
	Provider          string
	Region            string
	MinVCPU           int
	MinMemoryGB       float64
	Arch              string
	CPUKind           string
	IncludeDeprecated bool
}

// CatalogInfo says where the prices come from: the embedded snapshot, live
// data read from a provider's API, or both (mixed), and each live source's
// latest refresh.
type CatalogInfo struct {
	Source planner.Source `json:"source"`
	ReadAt time.Time      `json:"read_at"` // the oldest data in use: the snapshot's as-of date, or the oldest live read
	Live   []LiveStatus   `json:"live"`
}

// PricingPage is one page of the catalog.
type PricingPage struct {
	Types   []planner.InstanceType
	Total   int64
	Catalog CatalogInfo
}

// Pricing lists the catalog entries matching q, one page of them.
func (s *Service) Pricing(ctx context.Context, p *domain.Principal, q PricingQuery, page domain.Page) (PricingPage, error) {
	if err := need(p); err != nil {
		return PricingPage{}, err
	}
	if math.IsNaN(q.MinMemoryGB) || math.IsInf(q.MinMemoryGB, 0) || q.MinMemoryGB < 0 {
		return PricingPage{}, domain.Invalid("min_memory_gb", "must not be negative")
	}
	if q.MinMemoryGB > 1<<24 {
		return PricingPage{}, domain.Invalid("min_memory_gb", "must be at most %d", 1<<24)
	}
	c, info, err := s.currentCatalog(ctx, p.OrgID)
	if err != nil {
		return PricingPage{}, err
	}
	types, err := c.Filter(planner.PricingFilter{
		Provider: q.Provider, Region: q.Region, MinVCPU: q.MinVCPU,
		MinMemoryMiB: int64(math.Ceil(q.MinMemoryGB * 1024)),
		Arch:         planner.Arch(q.Arch), CPUKind: planner.CPUKind(q.CPUKind),
		IncludeDeprecated: q.IncludeDeprecated, Now: s.now(),
	})
	if err != nil {
		return PricingPage{}, err
	}
	out := PricingPage{Total: int64(len(types)), Catalog: info, Types: []planner.InstanceType{}}
	if from := int(page.Offset()); from < len(types) {
		out.Types = types[from:min(from+int(page.Limit), len(types))]
	}
	return out, nil
}

// Choices narrow and shape a recommendation; both recommend bodies take them.
type Choices struct {
	Providers    []string `json:"providers"`
	Regions      []string `json:"regions"`
	Arch         string   `json:"arch"`
	DedicatedCPU *bool    `json:"dedicated_cpu"`
	// MaxMonthlyPrice caps the whole fleet's monthly cost: a decimal amount
	// (a JSON string or number) in the answer currency, or
	// {"amount": "50", "currency": "USD"}.
	MaxMonthlyPrice   json.RawMessage `json:"max_monthly_price"`
	Currency          string          `json:"currency"`
	HeadroomPercent   *int            `json:"headroom_percent"`
	IncludeDeprecated bool            `json:"include_deprecated"`
	Limit             *int            `json:"limit"` // options listed; default 20, at most 1000
}

// RecommendRequest is the body of POST /v1/planner/recommend: cpu in
// cores, memory and disk in GB (GiB) per instance.
type RecommendRequest struct {
	CPU      *float64 `json:"cpu"`
	MemoryGB *float64 `json:"memory_gb"`
	DiskGB   *float64 `json:"disk_gb"`
	Count    *int     `json:"count"` // default 1
	Choices
}

// Recommend ranks single-type fleets for the requirement.
func (s *Service) Recommend(ctx context.Context, p *domain.Principal, r RecommendRequest) (planner.Result, error) {
	if err := need(p); err != nil {
		return planner.Result{}, err
	}
	cpu, mem, disk, err := resources(r.CPU, r.MemoryGB, r.DiskGB)
	if err != nil {
		return planner.Result{}, err
	}
	count := 1
	if r.Count != nil {
		count = *r.Count
	}
	req, err := planner.NewRequirement(cpu, mem, disk, count)
	if err != nil {
		return planner.Result{}, err
	}
	return s.recommend(ctx, p, req, r.Choices)
}

// TemplateRequest is the body of POST /v1/planner/recommend-for-template.
type TemplateRequest struct {
	Template string `json:"template"`
	Players  int    `json:"players"` // 0: the template's default
	Count    *int   `json:"count"`   // default 1
	Choices
}

// TemplateResult is a recommendation for a template: the template, the
// requirement derived from it (Result.Requirement) and the ranked options.
type TemplateResult struct {
	Template planner.Template `json:"template"`
	planner.Result
}

// RecommendForTemplate derives the requirement from a workload template and
// ranks fleets for it.
func (s *Service) RecommendForTemplate(ctx context.Context, p *domain.Principal, r TemplateRequest) (TemplateResult, error) {
	if err := need(p); err != nil {
		return TemplateResult{}, err
	}
	if r.Template == "" {
		return TemplateResult{}, domain.Invalid("template", "is required")
	}
	t, err := planner.TemplateByName(r.Template)
	if err != nil {
		return TemplateResult{}, err
	}
	if r.Players < 0 {
		return TemplateResult{}, domain.Invalid("players", "must be positive")
	}
	count := 1
	if r.Count != nil {
		if count = *r.Count; count <= 0 {
			return TemplateResult{}, domain.Invalid("count", "must be positive")
		}
	}
	req, err := t.Requirement(r.Players, count)
	if err != nil {
		return TemplateResult{}, err
	}
	res, err := s.recommend(ctx, p, req, r.Choices)
	if err != nil {
		return TemplateResult{}, err
	}
	return TemplateResult{Template: t, Result: res}, nil
}

func (s *Service) recommend(ctx context.Context, p *domain.Principal, req planner.Requirement, ch Choices) (planner.Result, error) {
	currency := strings.ToUpper(ch.Currency)
	if currency == "" {
		currency = planner.DefaultCurrency
	}
	limit := DefaultLimit
	if ch.Limit != nil {
		if limit = *ch.Limit; limit < 1 || limit > MaxOptions {
			return planner.Result{}, domain.Invalid("limit", "must be from 1 to %d", MaxOptions)
		}
	}
	maxPrice, err := price(ch.MaxMonthlyPrice, currency)
	if err != nil {
		return planner.Result{}, err
	}
	c, _, err := s.currentCatalog(ctx, p.OrgID)
	if err != nil {
		return planner.Result{}, err
	}
	return planner.Recommend(c, req, planner.Options{
		Providers: ch.Providers, Regions: ch.Regions, Arch: planner.Arch(ch.Arch), DedicatedCPU: ch.DedicatedCPU,
		MaxMonthlyPrice: maxPrice, Currency: currency, Rates: s.rates, HeadroomPercent: ch.HeadroomPercent,
		Overhead: &s.overhead, IncludeDeprecated: ch.IncludeDeprecated, Now: s.now(), Limit: limit,
	})
}

// price reads max_monthly_price: a decimal string or number in currency,
// or a {"amount", "currency"} object. Absent or null: no cap.
func price(raw json.RawMessage, currency string) (*planner.Money, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	bad := domain.Invalid("max_monthly_price", `must be a decimal amount ("49.90") or {"amount": "49.90", "currency": "EUR"}`)
	var amount string
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &amount); err != nil {
			return nil, bad
		}
	case '{':
		var m planner.Money
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, bad
		}
		return &m, nil // the planner checks the sign and the currency
	default:
		amount = string(raw) // a JSON number's text is a decimal: parse it exactly
	}
	m, err := planner.ParseMoney(amount, currency)
	if err != nil {
		return nil, bad
	}
	return &m, nil
}

// resources checks that cpu, memory_gb and disk_gb are present; the
// planner checks their values.
func resources(cpu, mem, disk *float64) (float64, float64, float64, error) {
	switch {
	case cpu == nil:
		return 0, 0, 0, domain.Invalid("cpu", "is required (cores per instance)")
	case mem == nil:
		return 0, 0, 0, domain.Invalid("memory_gb", "is required (GB per instance)")
	case disk == nil:
		return 0, 0, 0, domain.Invalid("disk_gb", "is required (GB per instance)")
	}
	return *cpu, *mem, *disk, nil
}
