package nodeops

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueNodes is the queue of power actions (short: API calls and polling).
const QueueNodes = "nodes"

// KindNodeAction is the job kind of a power action.
const KindNodeAction = "node_action"

// maxAttempts bounds a power action's attempts: a cloud error that may
// pass (a timeout, a 5xx) is retried, with River's backoff, twice.
const maxAttempts = 3

// ActionArgs are the args of a node_action job: the node (unique: one
// job per node while one waits or runs) and the action it carries out.
type ActionArgs struct {
	OrganizationID uuid.UUID `json:"organization_id" river:"unique"`
	NodeID         uuid.UUID `json:"node_id" river:"unique"`
	ActionID       uuid.UUID `json:"action_id"`
}

// Kind implements river.JobArgs.
func (ActionArgs) Kind() string { return KindNodeAction }

// InsertOpts implements river.JobArgsWithInsertOpts: unique per node while
// a job of it is waiting or running (a finished one does not count).
func (ActionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueNodes,
		MaxAttempts: maxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// Queue inserts jobs inside the caller's transaction (river.Client does).
type Queue interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Job is one node_action job handed to Run by the worker.
type Job struct {
	Args        ActionArgs
	JobID       int64
	Attempt     int
	MaxAttempts int
	// Complete marks the job done inside tx (river.JobCompleteTx), so the
	// action's outcome and the job's completion are one commit.
	Complete func(ctx context.Context, tx pgx.Tx) error
}

// KindNodeAddresses is the job kind that records a started or rebooted
// node's addresses when the power action could not read them.
const KindNodeAddresses = "node_addresses"

// addressAttempts bounds a node_addresses job's attempts (River's backoff
// between them: 1 s, 16 s, 81 s, 256 s).
const addressAttempts = 5

// AddressesArgs are the args of a node_addresses job (unique per node
// while one waits or runs: River requires the running state in a unique
// job's states).
type AddressesArgs struct {
	OrganizationID uuid.UUID `json:"organization_id" river:"unique"`
	NodeID         uuid.UUID `json:"node_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (AddressesArgs) Kind() string { return KindNodeAddresses }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (AddressesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueNodes,
		MaxAttempts: addressAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}
