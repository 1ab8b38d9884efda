package provision

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Power actions (nodeops) and Terraform runs on one node are kept apart:
// a run of a request whose node has a power action queued or running is
// 409 naming the action, and nodeops refuses a power action while a run of
// the node's request is queued or running. Both sides lock the provision
// request row first, so the check and the insert of one side are never
// interleaved with the other's.

// Power reads a node's power state from its cloud (nodeops.Service): the
// end of an apply of an existing node records it, since a resize may power
// the machine on or off (the aws provider starts a stopped instance to
// change its type).
type Power interface {
	// PowerState is running or stopped, or "" when the cloud cannot say
	// (a transitional state, a provider without power actions).
	PowerState(ctx context.Context, n store.Node) (string, error)
}

// UsePower makes applies record the node's power state as its cloud
// reports it afterwards.
func (s *Service) UsePower(p Power) { s.power = p }

// powerActionLostAfter is nodeops.DefaultWorkerLostAfter: a power action
// whose running job has had no heartbeat for this long lost its worker and
// does not block a run.
const powerActionLostAfter = 30 * time.Second

// noPowerAction is the 409 naming the power action queued or running on
// r's node (none before the request has a node). An action whose worker
// was lost is ended failed first, as nodeops does.
func (s *Service) noPowerAction(ctx context.Context, tx pgx.Tx, r store.ProvisionRequest) error {
	if !r.NodeID.Valid {
		return nil
	}
	a, err := s.q.GetActiveNodeAction(ctx, tx, store.GetActiveNodeActionParams{OrganizationID: r.OrganizationID, NodeID: r.NodeID.UUID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision %s: read its node's power action: %w", r.ID, err)
	}
	if ended, err := store.EndOrphanNodeAction(ctx, tx, a.ID, powerActionLostAfter); err != nil {
		return fmt.Errorf("provision %s: end the orphaned power action %s: %w", r.ID, a.ID, err)
	} else if ended {
		return nil
	}
	return domain.Conflict("the node has a %s action in progress (%s, %s): wait for it to finish (GET /v1/nodes/%s/actions) before a Terraform run",
		a.Kind, a.ID, a.Status, r.NodeID.UUID)
}

// appliedPowerState reads the power state of r's existing node after an
// apply ("" when there is none, no power reader, or the read failed: then
// the record stays, and GET .../power/status corrects it).
func (s *Service) appliedPowerState(ctx context.Context, a *active, r store.ProvisionRequest) string {
	if s.power == nil || !r.NodeID.Valid {
		return ""
	}
	n, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: r.OrganizationID, ID: r.NodeID.UUID})
	if err != nil {
		return ""
	}
	state, err := s.power.PowerState(ctx, n)
	if err != nil {
		a.logs.Note("could not read the node's power state after the apply (GET /v1/nodes/" + n.ID.String() + "/power/status corrects the record): " + err.Error())
		s.log.WarnContext(ctx, "read a node's power state after an apply", slog.String("provision_id", r.ID.String()), slog.Any("error", err))
		return ""
	}
	return state
}
