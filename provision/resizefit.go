package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

// A resize is pending from its request until its apply: the node keeps
// the size the cloud gives it and records the size asked for
// (pendingSize), and placements and drains count the smaller of both
// (package placement), so a downsize cannot be overfilled before it is
// applied. The apply checks the fit once more under the node's lock
// before it runs Terraform (applyFit): an apply that would leave the
// node's instances without room is refused, and the machine is not
// resized.

// pendingSize records on the locked node the size of instance type it as
// its pending size (none when it is the node's own type).
func (s *Service) pendingSize(ctx context.Context, tx pgx.Tx, org, node uuid.UUID, it providers.InstanceType) error {
	return s.q.SetNodeDesiredSize(ctx, tx, store.SetNodeDesiredSizeParams{
		OrganizationID: org, ID: node, InstanceType: it.Name,
		Vcpu: int32(it.VCPU), MemoryMb: int32(it.MemoryMB), DiskGb: int32(it.DiskGB),
	})
}

// applyFit runs before an apply of request r changes its node: under the
// locks of the request and the node (the order of a resize and of the
// run's final transaction), the instances placed on the node must fit the
// instance type being applied, else the answer is a conflict naming each
// short resource (only a type smaller in some resource is checked: a
// firewall change or an upsize never is). The type becomes the node's
// pending size first, whatever was recorded before. A request without a node yet (its first apply) has
// nothing to check.
func (s *Service) applyFit(ctx context.Context, tx pgx.Tx, r store.ProvisionRequest) error {
	if !r.NodeID.Valid {
		return nil
	}
	d, ok := s.drivers.Get(r.Provider)
	if !ok {
		return nil // the apply fails on it with its own message
	}
	it, ok := providers.FindInstanceType(d, r.InstanceType)
	if !ok {
		return nil // the apply refuses to register a node of unknown size
	}
	n, err := s.q.LockPlacementNode(ctx, tx, store.LockPlacementNodeParams{OrganizationID: r.OrganizationID, ID: r.NodeID.UUID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lock node of %s: %w", r.ID, err)
	}
	if err := s.pendingSize(ctx, tx, r.OrganizationID, n.ID, it); err != nil {
		return fmt.Errorf("node of %s: %w", r.ID, err)
	}
	shrinks := int32(it.VCPU) < n.Vcpu || int32(it.MemoryMB) < n.MemoryMb || int32(it.DiskGB) < n.DiskGb
	if short := resizeShortfall(n, it); shrinks && len(short) > 0 {
		return domain.Conflict("node %s cannot become %s: its instances would no longer fit: %s (move or delete some, or resize to a larger type)",
			n.Name, it.Name, strings.Join(short, "; "))
	}
	return nil
}

// checkApplyFit is applyFit in a transaction of its own, for an apply run
// about to start Terraform (the fit may have changed since the apply was
// asked for, or the apply followed its plan by itself). A refused apply
// still leaves the type as the node's pending size: it is the desired
// configuration, and no placement may make it fit worse.
func (s *Service) checkApplyFit(ctx context.Context, r store.ProvisionRequest) error {
	var refused error
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		locked, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: r.OrganizationID, ID: r.ID})
		if err != nil {
			return fmt.Errorf("lock provision %s: %w", r.ID, err)
		}
		if err := s.applyFit(ctx, tx, locked); errors.Is(err, domain.ErrConflict) {
			refused = err
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return refused
}

// refuseApply ends an apply run that applyFit refused before Terraform
// ran: nothing changed, so the request is planned again (its plan kept:
// apply it once the instances fit) with the reason as its error.
func (s *Service) refuseApply(ctx context.Context, a *active, cause error) error {
	msg := "apply refused before Terraform ran: " + cause.Error()
	a.logs.Note(msg)
	return s.finish(ctx, a, outcome{status: RunFailed, err: msg}, func(tx pgx.Tx) error {
		return s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID, Status: StatusPlanned, Error: msg})
	})
}
