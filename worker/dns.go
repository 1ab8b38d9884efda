package worker

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/dns"
)

// DNSSyncWorker runs dns_sync jobs: the record's outcome is written in the
// transaction that completes the job.
type DNSSyncWorker struct {
	river.WorkerDefaults[dns.SyncArgs]
	svc *dns.Service
}

// Timeout implements river.Worker: a few Cloudflare calls (a retry may
// list the record's name), each bounded by its own timeout, plus the wait
// for the token's rate limiter.
func (w *DNSSyncWorker) Timeout(*river.Job[dns.SyncArgs]) time.Duration { return 5 * time.Minute }

// Work implements river.Worker.
func (w *DNSSyncWorker) Work(ctx context.Context, job *river.Job[dns.SyncArgs]) error {
	return w.svc.RunSync(ctx, dns.SyncJob{
		Args: job.Args, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	})
}

// DNSReconcileWorker runs dns_reconcile jobs (the periodic fan-out, or
// one organization's check) and records the report as the job's output.
type DNSReconcileWorker struct {
	river.WorkerDefaults[dns.ReconcileArgs]
	svc *dns.Service
}

// Timeout implements river.Worker: a zone of 10,000 records is two list
// calls; repairs are one call each, paced by the rate limiter.
func (w *DNSReconcileWorker) Timeout(*river.Job[dns.ReconcileArgs]) time.Duration {
	return 30 * time.Minute
}

// Work implements river.Worker.
func (w *DNSReconcileWorker) Work(ctx context.Context, job *river.Job[dns.ReconcileArgs]) error {
	rep, err := w.svc.RunReconcile(ctx, job.Args.OrganizationID)
	if err != nil {
		return err
	}
	if job.Args.OrganizationID == uuid.Nil {
		return nil
	}
	summary := map[string]int{"calls": rep.Calls}
	for _, z := range rep.Zones {
		summary["zones"]++
		summary["recreated"] += len(z.Recreated)
		summary["repaired"] += len(z.Repaired)
		summary["marker_lost"] += len(z.MarkerLost)
		summary["foreign"] += z.Foreign
		summary["errors"] += len(z.Errors)
	}
	return river.RecordOutput(ctx, summary)
}
