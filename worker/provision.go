package worker

import (
	"context"
	"time"

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
	return w.svc.RunPlan(ctx, runJob(provision.RunPlan, provision.RunArgs(job.Args), job))
}

// ApplyWorker runs provision_apply jobs.
type ApplyWorker struct {
	river.WorkerDefaults[provision.ApplyArgs]
	svc     *provision.Service
	timeout time.Duration
}

// Timeout implements river.Worker.
func (w *ApplyWorker) Timeout(*river.Job[provision.ApplyArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *ApplyWorker) Work(ctx context.Context, job *river.Job[provision.ApplyArgs]) error {
	return w.svc.RunApply(ctx, runJob(provision.RunApply, provision.RunArgs(job.Args), job))
}

// DestroyWorker runs provision_destroy jobs.
type DestroyWorker struct {
	river.WorkerDefaults[provision.DestroyArgs]
	svc     *provision.Service
	timeout time.Duration
}

// Timeout implements river.Worker.
func (w *DestroyWorker) Timeout(*river.Job[provision.DestroyArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *DestroyWorker) Work(ctx context.Context, job *river.Job[provision.DestroyArgs]) error {
	return w.svc.RunDestroy(ctx, runJob(provision.RunDestroy, provision.RunArgs(job.Args), job))
}

// RefreshWorker runs provision_refresh jobs (drift checks).
type RefreshWorker struct {
	river.WorkerDefaults[provision.RefreshArgs]
	svc     *provision.Service
	timeout time.Duration
}

// Timeout implements river.Worker.
func (w *RefreshWorker) Timeout(*river.Job[provision.RefreshArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *RefreshWorker) Work(ctx context.Context, job *river.Job[provision.RefreshArgs]) error {
	return w.svc.RunRefresh(ctx, runJob(provision.RunRefresh, provision.RunArgs(job.Args), job))
}

// RenderPlanWorker runs provision_render_plan jobs (plan review).
type RenderPlanWorker struct {
	river.WorkerDefaults[provision.RenderPlanArgs]
	svc *provision.Service
}

// Timeout implements river.Worker.
func (w *RenderPlanWorker) Timeout(*river.Job[provision.RenderPlanArgs]) time.Duration {
	return 5 * time.Minute
}

// Work implements river.Worker.
func (w *RenderPlanWorker) Work(ctx context.Context, job *river.Job[provision.RenderPlanArgs]) error {
	return w.svc.RenderPlan(ctx, job.Args)
}

// DriftSweepWorker runs the periodic drift check.
type DriftSweepWorker struct {
	river.WorkerDefaults[provision.DriftSweepArgs]
	svc *provision.Service
}

// Work implements river.Worker.
func (w *DriftSweepWorker) Work(ctx context.Context, job *river.Job[provision.DriftSweepArgs]) error {
	n, err := w.svc.SweepDrift(ctx)
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, map[string]int{"refresh_runs": n})
}

// runJob describes a River job to the provision service, with the means
// to complete it inside the service's final transaction.
func runJob[T river.JobArgs](kind string, args provision.RunArgs, job *river.Job[T]) provision.Job {
	return provision.Job{
		OrganizationID: args.OrganizationID, ProvisionID: args.ProvisionID, RunID: args.RunID, Kind: kind,
		JobID: job.ID, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	}
}
