package nodeops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// queueAddresses inserts, in tx, the node_addresses job that records the
// node's addresses the power action could not read.
func (s *Service) queueAddresses(ctx context.Context, tx pgx.Tx, n store.Node) error {
	if s.queue == nil {
		return errors.New("queue the address read: no job queue")
	}
	if _, err := s.queue.InsertTx(ctx, tx, AddressesArgs{OrganizationID: n.OrganizationID, NodeID: n.ID}, nil); err != nil {
		return fmt.Errorf("queue the address read of node %s: %w", n.ID, err)
	}
	return nil
}

// RunAddresses carries out a node_addresses job: it reads the node's power
// status and, while it runs, records its addresses (with their auto-DNS
// update and audit entry) as a status read would. A failed read is
// returned: River retries the job with backoff, up to addressAttempts.
func (s *Service) RunAddresses(ctx context.Context, args AddressesArgs) error {
	n, err := s.node(ctx, s.st.Pool, args.OrganizationID, args.NodeID)
	if errors.Is(err, domain.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if err := s.canOperate(n); err != nil {
		return nil // nothing to read it with any more
	}
	st, err := s.read(ctx, n)
	if err != nil {
		s.log.WarnContext(ctx, "could not read a node's addresses after a power action: retrying", slog.String("node_id", n.ID.String()),
			slog.String("organization_id", n.OrganizationID.String()), slog.Any("error", err))
		return fmt.Errorf("read the addresses of node %s: %w", n.ID, err)
	}
	if recorded(st.State) != recordedRunning {
		return nil // stopped (or changing) meanwhile: the next start reads them
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		return s.record(ctx, tx, n, "", addresses{ipv4: st.IPv4, ipv6: st.IPv6})
	})
}

// PowerState reads the node's power state from its cloud (the local
// driver's machine row for local nodes) as shardform records it: running,
// stopped, or "" when the cloud reports a transitional or unknown state or
// the node's provider has no power client here. Provisioning calls it at
// the end of an apply of an existing node (a resize may start a stopped
// machine to change its type).
func (s *Service) PowerState(ctx context.Context, n store.Node) (string, error) {
	if s.canOperate(n) != nil {
		return "", nil
	}
	st, err := s.read(ctx, n)
	if err != nil {
		return "", err
	}
	return recorded(st.State), nil
}
