package dns

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// RecordsByIDs returns the organization's records among ids, each as Get
// answers it, in no particular order (the search package's loader).
func (s *Service) RecordsByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Record, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Record{}, nil
	}
	rows, err := s.q.DNSRecordsByIDs(ctx, s.st.Pool, store.DNSRecordsByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("dns records by ids: %w", err)
	}
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, nil
}

// RecordsOfNodes returns the live records (not deleted) of the
// organization's nodes among nodeIDs: those a node's dns_record_ids name.
func (s *Service) RecordsOfNodes(ctx context.Context, p *domain.Principal, nodeIDs []uuid.UUID) ([]Record, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return nil, err
	}
	if len(nodeIDs) == 0 {
		return []Record{}, nil
	}
	rows, err := s.q.DNSRecordsOfNodesFull(ctx, s.st.Pool, store.DNSRecordsOfNodesFullParams{OrganizationID: p.OrgID, NodeIds: nodeIDs})
	if err != nil {
		return nil, fmt.Errorf("dns records of nodes: %w", err)
	}
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, nil
}
