package capacity

import (
	"context"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
)

// FitRequest is the body of POST /v1/planner/suggest-fit: where should one
// more instance needing cpu cores, memory_gb and disk_gb go?
type FitRequest struct {
	CPU      *float64          `json:"cpu"`
	MemoryGB *float64          `json:"memory_gb"`
	DiskGB   *float64          `json:"disk_gb"`
	Region   string            `json:"region"`
	Labels   map[string]string `json:"labels"`
	Strategy string            `json:"strategy"` // binpack (default) or spread
	// Limit caps the fits and the rejected nodes listed (default 20, at
	// most 10,000); the totals and the counts by reason cover every node.
	Limit *int `json:"limit"`
}

// FitResult ranks the organization's nodes that can take the instance and
// explains the others.
type FitResult struct {
	Strategy planner.Strategy  `json:"strategy"`
	Need     planner.Resources `json:"need"`
	// Capacity is a node's raw size minus OverheadPerNode (the OS); free
	// is capacity minus the reservations of the instances placed on it.
	OverheadPerNode planner.Resources `json:"overhead_per_node"`
	Nodes           int               `json:"nodes"` // nodes of the organization considered
	Fits            []planner.NodeFit `json:"fits"`  // best first, at most limit
	FitsTotal       int               `json:"fits_total"`
	// Rejected lists nodes that cannot take the instance, by name, with
	// the reasons (at most limit of them).
	Rejected         []planner.NodeRejection `json:"rejected"`
	RejectedTotal    int                     `json:"rejected_total"`
	RejectedByReason map[string]int          `json:"rejected_by_reason"`
	Limit            int                     `json:"limit"`
}

// SuggestFit ranks the caller's organization's nodes for one more instance.
// It reads the nodes with their aggregated reservations (never the instance
// rows), and only when they changed since the last request (nodeCache).
func (s *Service) SuggestFit(ctx context.Context, p *domain.Principal, r FitRequest) (FitResult, error) {
	if err := need(p); err != nil {
		return FitResult{}, err
	}
	cpu, mem, disk, err := resources(r.CPU, r.MemoryGB, r.DiskGB)
	if err != nil {
		return FitResult{}, err
	}
	req, err := planner.NewRequirement(cpu, mem, disk, 1)
	if err != nil {
		return FitResult{}, err
	}
	limit := DefaultLimit
	if r.Limit != nil {
		if limit = *r.Limit; limit < 1 || limit > MaxNodes {
			return FitResult{}, domain.Invalid("limit", "must be from 1 to %d", MaxNodes)
		}
	}
	if len(r.Labels) > maxLabels {
		return FitResult{}, domain.Invalid("labels", "must hold at most %d labels", maxLabels)
	}
	strategy := planner.Strategy(r.Strategy)
	if strategy != "" && strategy != planner.StrategyBinpack && strategy != planner.StrategySpread {
		return FitResult{}, domain.Invalid("strategy", "must be binpack or spread")
	}
	nodes, err := s.nodes(ctx, p.OrgID)
	if err != nil {
		return FitResult{}, err
	}
	res, err := planner.SuggestFit(nodes, planner.FitRequest{Need: req.Per, Region: r.Region, Labels: r.Labels, Strategy: strategy})
	if err != nil {
		return FitResult{}, err
	}
	out := FitResult{
		Strategy: res.Strategy, Need: res.Need, OverheadPerNode: s.overhead, Nodes: len(nodes),
		Fits: res.Fits[:min(limit, len(res.Fits))], FitsTotal: len(res.Fits),
		Rejected: res.Rejected[:min(limit, len(res.Rejected))], RejectedTotal: len(res.Rejected),
		RejectedByReason: countReasons(res.Rejected), Limit: limit,
	}
	return out, nil
}

// countReasons counts the rejected nodes by reason (a node may have several).
func countReasons(rejected []planner.NodeRejection) map[string]int {
	var counts [8]int
	for _, r := range rejected {
		for i := range counts {
			if r.Reasons.Has(planner.RejectReasons(1) << i) {
				counts[i]++
			}
		}
	}
	out := map[string]int{}
	for i, n := range counts {
		if n > 0 {
			out[(planner.RejectReasons(1) << i).Codes()[0]] = n
		}
	}
	return out
}
