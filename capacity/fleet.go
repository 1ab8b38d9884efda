package capacity

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// FleetReportRequest is the optional body of POST /v1/planner/fleet-report.
type FleetReportRequest struct {
	Currency string `json:"currency"` // default EUR
	// ThresholdPercent overrides the server's saving threshold
	// (SHARDFORM_FLEET_SAVING_THRESHOLD, default 20) for this report.
	ThresholdPercent *int `json:"threshold_percent"`
}

// FleetReport is a stored fleet report: planner.FleetReport (its fields at
// the top level) with when and from which prices it was computed.
type FleetReport struct {
	JobID       int64       `json:"job_id"`
	GeneratedAt time.Time   `json:"generated_at"`
	Catalog     CatalogInfo `json:"catalog"`
	// UnpricedNodes counts nodes whose provider, region and instance type
	// the catalog does not price: they count at zero cost (emptying them
	// saves nothing in the report).
	UnpricedNodes int `json:"unpriced_nodes"`
	planner.FleetReport
}

// FleetJob is one fleet_report job handed to RunFleetReport by the worker.
type FleetJob struct {
	ID   int64
	Args FleetReportArgs
	// Complete marks the job done inside tx (river.JobCompleteTx), so the
	// report is stored in the transaction that completes its job.
	Complete func(ctx context.Context, tx pgx.Tx) error
}

// ThresholdPercent is the server's default saving threshold.
func (s *Service) ThresholdPercent() int { return s.threshold }

// RequestFleetReport validates the request and queues a fleet_report job
// for the caller's organization (planner:write).
func (s *Service) RequestFleetReport(ctx context.Context, p *domain.Principal, r FleetReportRequest) (JobInfo, error) {
	if err := needPerm(p, domain.PermPlannerWrite); err != nil {
		return JobInfo{}, err
	}
	args := FleetReportArgs{OrganizationID: p.OrgID, Currency: strings.ToUpper(r.Currency), ThresholdPercent: s.threshold}
	if args.Currency == "" {
		args.Currency = planner.DefaultCurrency
	}
	if !s.rates.Knows(args.Currency) {
		return JobInfo{}, domain.Invalid("currency", "no exchange rate for %q", r.Currency)
	}
	if r.ThresholdPercent != nil {
		if t := *r.ThresholdPercent; t < 0 || t > 100 {
			return JobInfo{}, domain.Invalid("threshold_percent", "must be from 0 to 100")
		}
		args.ThresholdPercent = *r.ThresholdPercent
	}
	if s.queue == nil {
		return JobInfo{}, fmt.Errorf("request fleet report: no job queue")
	}
	var out JobInfo
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		res, err := s.queue.InsertTx(ctx, tx, args, nil)
		if err != nil {
			return fmt.Errorf("request fleet report: queue: %w", err)
		}
		out = JobInfo{JobID: res.Job.ID, Kind: KindFleetReport, Duplicate: res.UniqueSkippedAsDuplicate}
		return nil
	})
	return out, err
}

// LatestFleetReport returns the organization's latest stored report as
// stored (JSON of FleetReport), or not found when none was computed yet.
func (s *Service) LatestFleetReport(ctx context.Context, p *domain.Principal) (json.RawMessage, error) {
	if err := need(p); err != nil {
		return nil, err
	}
	row, err := s.q.GetFleetReport(ctx, s.st.Pool, p.OrgID)
	if store.IsNoRows(err) {
		return nil, &domain.PublicError{Kind: domain.ErrNotFound, Message: "no fleet report yet: POST /v1/planner/fleet-report computes one"}
	}
	if err != nil {
		return nil, fmt.Errorf("get fleet report: %w", err)
	}
	return row.Report, nil
}

// RunFleetReport computes the report of the job's organization and stores
// it, replacing the previous one, in the transaction that completes the job.
func (s *Service) RunFleetReport(ctx context.Context, job FleetJob) error {
	rep, err := s.ComputeFleetReport(ctx, job.Args.OrganizationID, job.Args.Currency, job.Args.ThresholdPercent)
	if err != nil {
		return err
	}
	rep.JobID = job.ID
	raw, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("fleet report: encode: %w", err)
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.SaveFleetReport(ctx, tx, store.SaveFleetReportParams{
			OrganizationID: job.Args.OrganizationID, JobID: job.ID, GeneratedAt: rep.GeneratedAt, Report: raw,
		}); err != nil {
			return fmt.Errorf("fleet report: store: %w", err)
		}
		if job.Complete != nil {
			return job.Complete(ctx, tx)
		}
		return nil
	})
}

// ComputeFleetReport reads the organization's nodes and every instance
// placed on them (one consistent snapshot), prices each node from the
// organization's current catalog, and runs planner.BuildFleetReport.
func (s *Service) ComputeFleetReport(ctx context.Context, orgID uuid.UUID, currency string, threshold int) (FleetReport, error) {
	cat, info, err := s.currentCatalog(ctx, orgID)
	if err != nil {
		return FleetReport{}, err
	}
	var nodes []store.ListFleetNodesRow
	var instances []store.ListFleetInstancesRow
	err = pgx.BeginTxFunc(ctx, s.st.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if nodes, err = s.q.ListFleetNodes(ctx, tx, orgID); err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		if instances, err = s.q.ListFleetInstances(ctx, tx, orgID); err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		return nil
	})
	if err != nil {
		return FleetReport{}, fmt.Errorf("fleet report of %s: %w", orgID, err)
	}
	prices := make(map[string]planner.Money, len(cat.Types))
	for _, t := range cat.Types {
		prices[t.Key()] = t.Monthly
	}
	fleet := make([]planner.FleetNode, len(nodes))
	index := make(map[uuid.UUID]int, len(nodes))
	unpriced := 0
	for i, n := range nodes {
		index[n.ID] = i
		raw := effectiveSize(n.Vcpu, n.MemoryMb, n.DiskGb, n.DesiredVcpu, n.DesiredMemoryMb, n.DesiredDiskGb) // a pending downsize counts
		cost, ok := prices[n.Provider+"/"+n.Region+"/"+n.InstanceType]
		if !ok {
			unpriced++
			cost = planner.Money{Currency: currency}
		}
		fleet[i] = planner.FleetNode{
			NodeCapacity: planner.NodeCapacity{
				ID: n.ID.String(), Name: n.Name, Provider: n.Provider, Region: n.Region,
				Ready: n.Status != "maintenance" && n.Status != "unreachable", Cordoned: n.Status == "cordoned", Stopped: n.Status == "stopped",
				Capacity: planner.Usable(raw, s.overhead, 0),
			},
			MonthlyCost: cost,
		}
	}
	for _, in := range instances {
		i, ok := index[in.NodeID]
		if !ok {
			continue // cannot happen inside one snapshot: the foreign key holds
		}
		fleet[i].Placed = append(fleet[i].Placed, planner.Placement{
			ID: in.ID.String(), Name: in.Name,
			Need: planner.Resources{MilliCPU: int64(in.CpuMillis), MemoryMiB: int64(in.MemoryMb), DiskMiB: int64(in.DiskGb) * 1024},
		})
	}
	for i := range fleet {
		fleet[i].Instances = len(fleet[i].Placed)
	}
	rep, err := planner.BuildFleetReport(fleet, planner.FleetOptions{ThresholdPercent: &threshold, Currency: currency, Rates: s.rates})
	if err != nil {
		return FleetReport{}, fmt.Errorf("fleet report of %s: %w", orgID, err)
	}
	for i := range rep.Emptiable {
		rep.Emptiable[i].DrainURL = "/v1/nodes/" + rep.Emptiable[i].ID + "/drain"
	}
	return FleetReport{GeneratedAt: s.now().UTC(), Catalog: info, UnpricedNodes: unpriced, FleetReport: rep}, nil
}
