package worker

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/providers"
)

// PricingRefreshWorker runs pricing_refresh jobs: with an organization it
// reads that organization's live prices; without one (the hourly periodic
// job) it queues one job per organization with a default credential.
type PricingRefreshWorker struct {
	river.WorkerDefaults[capacity.PricingRefreshArgs]
	svc *capacity.Service
}

// Timeout implements river.Worker: two API calls, paginated.
func (w *PricingRefreshWorker) Timeout(*river.Job[capacity.PricingRefreshArgs]) time.Duration {
	return 2 * time.Minute
}

// Work implements river.Worker. A refused credential or a missing one is
// final (the job is cancelled, the error stays recorded for the API);
// other failures are retried.
func (w *PricingRefreshWorker) Work(ctx context.Context, job *river.Job[capacity.PricingRefreshArgs]) error {
	if job.Args.OrganizationID == uuid.Nil {
		n, err := w.svc.EnqueuePricingRefreshes(ctx)
		if err != nil {
			return err
		}
		return river.RecordOutput(ctx, map[string]int{"queued": n})
	}
	err := w.svc.RefreshPricing(ctx, job.Args.OrganizationID)
	if errors.Is(err, providers.ErrCredentialRefused) || errors.Is(err, capacity.ErrNoCredential) {
		return river.JobCancel(err)
	}
	return err
}

// FleetReportWorker runs fleet_report jobs: it stores the report in the
// transaction that completes the job.
type FleetReportWorker struct {
	river.WorkerDefaults[capacity.FleetReportArgs]
	svc *capacity.Service
}

// Timeout implements river.Worker: 10,000 nodes take well under 2 s.
func (w *FleetReportWorker) Timeout(*river.Job[capacity.FleetReportArgs]) time.Duration {
	return 5 * time.Minute
}

// Work implements river.Worker.
func (w *FleetReportWorker) Work(ctx context.Context, job *river.Job[capacity.FleetReportArgs]) error {
	return w.svc.RunFleetReport(ctx, capacity.FleetJob{
		ID: job.ID, Args: job.Args,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	})
}
