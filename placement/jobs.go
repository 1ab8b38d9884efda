package placement

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/liveness"
	"github.com/shardform/shardform/store"
)

// QueuePlacement is the queue of drains: its own, so a drain never waits
// behind Terraform runs or planner jobs.
const QueuePlacement = "placement"

// KindDrain is the job kind of a drain.
const KindDrain = "node_drain"

// Queue is what the service needs of the River client: a drain's job is
// inserted in the transaction that cordons the node and writes the
// migration record.
type Queue interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// DrainArgs runs one drain: the moves of its migration record, one at a
// time.
type DrainArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	MigrationID    uuid.UUID `json:"migration_id"`
}

// Kind implements river.JobArgs.
func (DrainArgs) Kind() string { return KindDrain }

// InsertOpts implements river.JobArgsWithInsertOpts. A drain run again (its
// worker died, or a statement failed) goes on from the moves still pending.
func (DrainArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueuePlacement, MaxAttempts: 5}
}

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

// WorkDrain is a node_drain job's attempt (last: River's last one): the
// drain's moves (RunDrain), and what the job's end needs. A drain another
// live worker holds (its job was taken for dead while it lived) is
// snoozed: looked at again soon, without using an attempt, and never
// failed under the live one. A job cancelled in River UI while it ran ends
// its drain cancelled. After the last attempt failed, the drain is
// recorded failed with the error.
func (s *Service) WorkDrain(ctx context.Context, args DrainArgs, last bool) error {
	err := s.RunDrain(ctx, args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, liveness.ErrHeld):
		return river.JobSnooze(drainStartGrace)
	case errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely):
		if cerr := s.cancelDrain(context.WithoutCancel(ctx), args); cerr != nil {
			return cerr
		}
	case last:
		if ferr := s.FailDrain(context.WithoutCancel(ctx), args, err); ferr != nil {
			return ferr
		}
	}
	return err
}

// cancelDrain ends a drain whose job was cancelled in River UI while it
// ran.
func (s *Service) cancelDrain(ctx context.Context, args DrainArgs) error {
	m, err := s.q.GetMigration(ctx, s.st.Pool, store.GetMigrationParams{OrganizationID: args.OrganizationID, ID: args.MigrationID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drain %s: %w", args.MigrationID, err)
	}
	if m.Status != MigrationQueued && m.Status != MigrationRunning {
		return nil
	}
	return s.finishDrain(ctx, m, MigrationCancelled, "its job was cancelled in River", "cancelled")
}
