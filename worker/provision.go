package worker

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/shardform/shardform/provision"
)

// PlanWorker runs provision_plan jobs.
type PlanWorker struct {
	river.WorkerDefaults[provision.PlanArgs]
	svc     *provision.Service
	timeout time.Duration // River cancels the run's context after it: interrupt, then kill
}

// Timeout implements river.Worker.
func (w *PlanWorker) Timeout(*river.Job[provision.PlanArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *PlanWorker) Work(ctx context.Context, job *river.Job[provision.PlanArgs]) error {
	return w.svc.RunPlan(ctx, provision.Job{OrganizationID: job.Args.OrganizationID, ProvisionID: job.Args.ProvisionID, Attempt: job.Attempt})
}

// ApplyWorker runs provision_apply jobs.
type ApplyWorker struct {
	river.WorkerDefaults[provision.ApplyArgs]
	svc     *provision.Service
	timeout time.Duration // River cancels the run's context after it: interrupt, then kill
}

// Timeout implements river.Worker.
func (w *ApplyWorker) Timeout(*river.Job[provision.ApplyArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *ApplyWorker) Work(ctx context.Context, job *river.Job[provision.ApplyArgs]) error {
	return w.svc.RunApply(ctx, provision.Job{OrganizationID: job.Args.OrganizationID, ProvisionID: job.Args.ProvisionID, Attempt: job.Attempt})
}

// DestroyWorker runs provision_destroy jobs.
type DestroyWorker struct {
	river.WorkerDefaults[provision.DestroyArgs]
	svc     *provision.Service
	timeout time.Duration // River cancels the run's context after it: interrupt, then kill
}

// Timeout implements river.Worker.
func (w *DestroyWorker) Timeout(*river.Job[provision.DestroyArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *DestroyWorker) Work(ctx context.Context, job *river.Job[provision.DestroyArgs]) error {
	return w.svc.RunDestroy(ctx, provision.Job{OrganizationID: job.Args.OrganizationID, ProvisionID: job.Args.ProvisionID, Attempt: job.Attempt})
}
