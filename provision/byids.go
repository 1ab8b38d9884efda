package provision

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// RequestsByIDs returns the organization's requests among ids, each as Get
// answers it (its drift verdict included), in no particular order: the
// search package's loader. Two queries, however many ids.
func (s *Service) RequestsByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Request, error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Request{}, nil
	}
	rows, err := s.q.ProvisionRequestsByIDs(ctx, s.st.Pool, store.ProvisionRequestsByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("provision requests by ids: %w", err)
	}
	out := make([]Request, len(rows))
	at := make(map[uuid.UUID]int, len(rows))
	found := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i], at[r.ID], found[i] = s.view(ctx, r), i, r.ID
	}
	if len(found) == 0 {
		return out, nil
	}
	last, err := s.q.LatestRefreshRunsOf(ctx, s.st.Pool, store.LatestRefreshRunsOfParams{OrganizationID: p.OrgID, ProvisionIds: found})
	if err != nil {
		return nil, fmt.Errorf("provision requests by ids: last refreshes: %w", err)
	}
	for _, r := range last {
		if i, ok := at[r.ProvisionID]; ok && r.Drifted.Valid {
			out[i].Drift = &DriftCheck{Drifted: r.Drifted.Bool, RunID: r.ID, CheckedAt: r.FinishedAt}
		}
	}
	return out, nil
}

// NodesByIDs returns the organization's nodes among ids, each as GetNode
// answers it, in no particular order. Two queries, however many ids.
func (s *Service) NodesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Node, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Node{}, nil
	}
	rows, err := s.q.NodesByIDs(ctx, s.st.Pool, store.NodesByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("nodes by ids: %w", err)
	}
	out := make([]Node, len(rows))
	for i, n := range rows {
		out[i] = s.nodeView(ctx, n)
	}
	if err := s.withDNS(ctx, p.OrgID, out); err != nil {
		return nil, err
	}
	return out, nil
}

// LatestRuns returns the newest runs (at most per of each) of the
// organization's requests among provisionIDs, newest first per request, as
// GetRun answers them. One query.
func (s *Service) LatestRuns(ctx context.Context, p *domain.Principal, provisionIDs []uuid.UUID, per int32) ([]Run, error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return nil, err
	}
	if len(provisionIDs) == 0 {
		return []Run{}, nil
	}
	rows, err := s.q.LatestRunsOf(ctx, s.st.Pool, store.LatestRunsOfParams{OrganizationID: p.OrgID, ProvisionIds: provisionIDs, Per: per})
	if err != nil {
		return nil, fmt.Errorf("latest runs: %w", err)
	}
	out := make([]Run, len(rows))
	for i, r := range rows {
		out[i] = s.listedRunView(ctx, store.ListRunsRow(r))
	}
	return out, nil
}
