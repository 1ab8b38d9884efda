package worker

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

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
	return w.svc.RunPlan(ctx, provisionJob(job.Args.OrganizationID, job.Args.ProvisionID, job))
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
	return w.svc.RunApply(ctx, provisionJob(job.Args.OrganizationID, job.Args.ProvisionID, job))
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
	return w.svc.RunDestroy(ctx, provisionJob(job.Args.OrganizationID, job.Args.ProvisionID, job))
}

// provisionJob describes a River job to the provision service, with the
// means to complete it inside the service's final transaction.
func provisionJob[T river.JobArgs](org, id uuid.UUID, job *river.Job[T]) provision.Job {
	return provision.Job{
		OrganizationID: org, ProvisionID: id, Attempt: job.Attempt,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	}
}
