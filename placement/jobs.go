package placement

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
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
