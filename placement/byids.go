package placement

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// InstancesByIDs returns the organization's instances among ids, each as Get
// answers it, in no particular order (the search package's loader).
func (s *Service) InstancesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Instance, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Instance{}, nil
	}
	rows, err := s.q.InstancesByIDs(ctx, s.st.Pool, store.InstancesByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("instances by ids: %w", err)
	}
	out := make([]Instance, len(rows))
	for i, r := range rows {
		out[i] = instanceView(store.ListInstancesRow(r))
	}
	return out, nil
}

// InstancesOfNodes returns the instances on the organization's nodes among
// nodeIDs, oldest first (one query).
func (s *Service) InstancesOfNodes(ctx context.Context, p *domain.Principal, nodeIDs []uuid.UUID) ([]Instance, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, err
	}
	if len(nodeIDs) == 0 {
		return []Instance{}, nil
	}
	rows, err := s.q.InstancesOfNodes(ctx, s.st.Pool, store.InstancesOfNodesParams{OrganizationID: p.OrgID, NodeIds: nodeIDs})
	if err != nil {
		return nil, fmt.Errorf("instances of nodes: %w", err)
	}
	out := make([]Instance, len(rows))
	for i, r := range rows {
		out[i] = instanceView(store.ListInstancesRow(r))
	}
	return out, nil
}
