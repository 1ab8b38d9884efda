package provision

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Cordon stops a ready node from taking new instances (POST
// /v1/nodes/{id}/cordon): placements, moves and suggest-fit refuse it
// (`cordoned`); the instances on it stay. Cordoning a cordoned node changes
// nothing; a node in maintenance takes no new instances already and is
// 409. A stopped (powered-off) node is cordoned too: it shows as stopped
// until started, then as cordoned.
func (s *Service) Cordon(ctx context.Context, p *domain.Principal, id uuid.UUID) (Node, error) {
	return s.setSchedulable(ctx, p, id, "cordoned")
}

// Uncordon lets a cordoned node take instances again (POST
// /v1/nodes/{id}/uncordon). A node being drained or migrated is 409 (cancel
// the migration first); a ready node is answered unchanged.
func (s *Service) Uncordon(ctx context.Context, p *domain.Principal, id uuid.UUID) (Node, error) {
	return s.setSchedulable(ctx, p, id, "ready")
}

func (s *Service) setSchedulable(ctx context.Context, p *domain.Principal, id uuid.UUID, status string) (Node, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Node{}, err
	}
	var out store.Node
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		// The lock a placement and a drain take: a drain committed before
		// it is seen below.
		n, err := s.q.LockPlacementNode(ctx, tx, store.LockPlacementNodeParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("node")
		}
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// A stopped node (powered off) is cordoned or uncordoned too: its
		// status shows again once it is started. An unreachable one is
		// cordoned, so it stays out of placements when its agent is back.
		switch {
		case n.Status == "ready", n.Status == "cordoned", n.Status == PowerStopped:
		case n.Status == "unreachable" && status == "cordoned":
		default:
			return domain.Conflict("node %s is %s: it takes no new instances already (PUT /v1/nodes/%s {\"status\"} changes it)", n.Name, n.Status, id)
		}
		if status == "ready" {
			// A drain whose job ended without an outcome (cancelled in
			// River UI, discarded, deleted) holds the node no longer.
			if _, err := store.EndOrphanMigrations(ctx, tx, p.OrgID, uuid.NullUUID{UUID: id, Valid: true}, uuid.NullUUID{}); err != nil {
				return fmt.Errorf("end drains whose job ended: %w", err)
			}
			active, err := s.q.GetActiveMigrationOfNode(ctx, tx, store.GetActiveMigrationOfNodeParams{OrganizationID: p.OrgID, NodeID: id})
			if err == nil {
				return domain.Conflict("node %s is being emptied by %s %s (%s): POST /v1/migrations/%s/cancel first", n.Name, active.Kind, active.ID, active.Status, active.ID)
			}
			if !store.IsNoRows(err) {
				return fmt.Errorf("active migration: %w", err)
			}
		}
		out, err = s.q.SetNodeSchedulable(ctx, tx, store.SetNodeSchedulableParams{OrganizationID: p.OrgID, ID: id, Status: status})
		if store.IsNoRows(err) { // stopped, and in another status once started
			return domain.Conflict("node %s is stopped, and not ready or cordoned once started: it takes no new instances already (PUT /v1/nodes/%s {\"status\"} changes it)", n.Name, id)
		}
		if err != nil {
			return fmt.Errorf("set status: %w", err)
		}
		return nil
	})
	if err != nil {
		return Node{}, fmt.Errorf("set node %s %s: %w", id, status, err)
	}
	view := []Node{s.nodeView(ctx, out)}
	if err := s.withDNS(ctx, p.OrgID, view); err != nil {
		return Node{}, err
	}
	return view[0], nil
}

// destroyCheck runs in the transaction that queues a destroy: a node still
// holding instances is 409 unless force (its instances are deleted with
// it); otherwise the node is cordoned, so no instance lands on it while it
// is destroyed.
func (s *Service) destroyCheck(force bool) func(ctx context.Context, tx pgx.Tx, r store.ProvisionRequest) error {
	return func(ctx context.Context, tx pgx.Tx, r store.ProvisionRequest) error {
		n, err := s.q.LockNodeOfProvision(ctx, tx, store.LockNodeOfProvisionParams{OrganizationID: r.OrganizationID, ProvisionID: uuid.NullUUID{UUID: r.ID, Valid: true}})
		if store.IsNoRows(err) {
			return nil // not applied yet, or its node is gone
		}
		if err != nil {
			return fmt.Errorf("lock node: %w", err)
		}
		if n.InstanceCount > 0 && !force {
			return holdsInstances(n.Name, n.ID, n.InstanceCount, "DELETE /v1/provision/"+r.ID.String())
		}
		if err := s.q.CordonNode(ctx, tx, store.CordonNodeParams{OrganizationID: r.OrganizationID, ID: n.ID}); err != nil {
			return fmt.Errorf("cordon node: %w", err)
		}
		return nil
	}
}

func holdsInstances(name string, id uuid.UUID, count int32, call string) error {
	what := "instances"
	if count == 1 {
		what = "instance"
	}
	return domain.Conflict("node %s still holds %d %s: drain it first (POST /v1/nodes/%s/drain), or %s?force=true deletes them with it",
		name, count, what, id, call)
}
