package provision

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueTerraform is the queue of Terraform runs (few workers: heavy).
const QueueTerraform = "terraform"

// Job kinds.
const (
	KindPlan    = "provision_plan"
	KindApply   = "provision_apply"
	KindDestroy = "provision_destroy"
)

// uniqueWhileActive makes a job unique per provision request (its args)
// while one is waiting or running.
func uniqueWhileActive() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueTerraform,
		MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// PlanArgs plans a provision request.
type PlanArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	ProvisionID    uuid.UUID `json:"provision_id"`
}

// Kind implements river.JobArgs.
func (PlanArgs) Kind() string { return KindPlan }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PlanArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// ApplyArgs applies a provision request's saved plan.
type ApplyArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	ProvisionID    uuid.UUID `json:"provision_id"`
}

// Kind implements river.JobArgs.
func (ApplyArgs) Kind() string { return KindApply }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ApplyArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// DestroyArgs destroys a provision request's resources.
type DestroyArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	ProvisionID    uuid.UUID `json:"provision_id"`
}

// Kind implements river.JobArgs.
func (DestroyArgs) Kind() string { return KindDestroy }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DestroyArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }
