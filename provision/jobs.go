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
	KindPlan       = "provision_plan"
	KindApply      = "provision_apply"
	KindDestroy    = "provision_destroy"
	KindRefresh    = "provision_refresh"
	KindRenderPlan = "provision_render_plan"
	KindDriftSweep = "provision_drift_sweep"
	maxRunAttempts = 5
)

// PriorityBackground is the River priority of the terraform queue's work
// nobody waits for (rendering a plan for review, the drift sweep and the
// refresh runs it queues): River fetches by priority first (1, the
// default, is the highest), so users' plans, applies and destroys never
// wait behind it.
const PriorityBackground = 4

// uniqueWhileActive makes a job unique per provision request (the fields
// tagged river:"unique") while one is waiting or running.
func uniqueWhileActive() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueTerraform,
		MaxAttempts: maxRunAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// RunArgs are the args of every run's job: the request (unique: one job
// per request at a time) and the run it carries out. Jobs inserted before
// runs existed have no run id; the worker gives them a run.
type RunArgs struct {
	OrganizationID uuid.UUID `json:"organization_id" river:"unique"`
	ProvisionID    uuid.UUID `json:"provision_id" river:"unique"`
	RunID          uuid.UUID `json:"run_id,omitempty"`
}

// PlanArgs plans a provision request.
type PlanArgs RunArgs

// Kind implements river.JobArgs.
func (PlanArgs) Kind() string { return KindPlan }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PlanArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// ApplyArgs applies a provision request's saved plan.
type ApplyArgs RunArgs

// Kind implements river.JobArgs.
func (ApplyArgs) Kind() string { return KindApply }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ApplyArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// DestroyArgs destroys a provision request's resources.
type DestroyArgs RunArgs

// Kind implements river.JobArgs.
func (DestroyArgs) Kind() string { return KindDestroy }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DestroyArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// RefreshArgs checks an applied request for drift (plan -refresh-only).
type RefreshArgs RunArgs

// Kind implements river.JobArgs.
func (RefreshArgs) Kind() string { return KindRefresh }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RefreshArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive() }

// RenderPlanArgs renders a run's saved plan for review (show -json, masked).
type RenderPlanArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	RunID          uuid.UUID `json:"run_id"`
}

// Kind implements river.JobArgs.
func (RenderPlanArgs) Kind() string { return KindRenderPlan }

// InsertOpts implements river.JobArgsWithInsertOpts: one render per run at a time.
func (RenderPlanArgs) InsertOpts() river.InsertOpts {
	o := uniqueWhileActive()
	o.MaxAttempts = 3
	o.Priority = PriorityBackground
	return o
}

// DriftSweepArgs is the periodic drift check: a refresh run for every
// applied request without a run in progress.
type DriftSweepArgs struct{}

// Kind implements river.JobArgs.
func (DriftSweepArgs) Kind() string { return KindDriftSweep }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DriftSweepArgs) InsertOpts() river.InsertOpts {
	o := uniqueWhileActive()
	o.MaxAttempts = 1
	o.Priority = PriorityBackground
	return o
}
