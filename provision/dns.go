package provision

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/store"
)

// DNS keeps nodes' DNS records (dns.Service's auto-DNS): called inside the
// transactions that register and remove nodes, so a node's records are
// queued with the node or not at all.
type DNS interface {
	NodeRegistered(ctx context.Context, tx pgx.Tx, n store.Node) error
	NodeRemoved(ctx context.Context, tx pgx.Tx, orgID, provisionID uuid.UUID) error
	NodeDeleted(ctx context.Context, tx pgx.Tx, orgID, nodeID uuid.UUID) error
}

// UseDNS turns auto-DNS on for the nodes this service registers.
func (s *Service) UseDNS(d DNS) { s.dns = d }

// nodeRegistered tells auto-DNS of a registered (or re-registered) node.
func (s *Service) nodeRegistered(ctx context.Context, tx pgx.Tx, n store.Node) error {
	if s.dns == nil {
		return nil
	}
	return s.dns.NodeRegistered(ctx, tx, n)
}

// nodeRemoved tells auto-DNS that the node of a request is going.
func (s *Service) nodeRemoved(ctx context.Context, tx pgx.Tx, orgID, provisionID uuid.UUID) error {
	if s.dns == nil {
		return nil
	}
	return s.dns.NodeRemoved(ctx, tx, orgID, provisionID)
}

// nodeDeleted tells auto-DNS that a node (of no provision request) is
// being deleted.
func (s *Service) nodeDeleted(ctx context.Context, tx pgx.Tx, orgID, nodeID uuid.UUID) error {
	if s.dns == nil {
		return nil
	}
	return s.dns.NodeDeleted(ctx, tx, orgID, nodeID)
}

// withDNS fills the nodes' DNS names and record ids (one query).
func (s *Service) withDNS(ctx context.Context, org uuid.UUID, nodes []Node) error {
	if len(nodes) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(nodes))
	at := make(map[uuid.UUID]int, len(nodes))
	for i, n := range nodes {
		ids[i], at[n.ID] = n.ID, i
		nodes[i].DNSRecordIDs = []uuid.UUID{}
	}
	rows, err := s.q.ListDNSRecordsOfNodes(ctx, s.st.Pool, store.ListDNSRecordsOfNodesParams{OrganizationID: org, NodeIds: ids})
	if err != nil {
		return fmt.Errorf("dns records of nodes: %w", err)
	}
	for _, r := range rows {
		i, ok := at[r.NodeID.UUID]
		if !ok {
			continue
		}
		nodes[i].DNSRecordIDs = append(nodes[i].DNSRecordIDs, r.ID)
		if nodes[i].FQDN == "" && (r.Type == "A" || r.Type == "AAAA") {
			nodes[i].FQDN = r.Name
		}
	}
	return nil
}
