package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/sshsign"
)

// SignWorker runs ssh_sign jobs: it signs one certificate and records it in
// the transaction that completes the job.
type SignWorker struct {
	river.WorkerDefaults[sshsign.SignArgs]
	svc *sshsign.Service
}

// Timeout implements river.Worker: signing takes milliseconds.
func (w *SignWorker) Timeout(*river.Job[sshsign.SignArgs]) time.Duration { return 30 * time.Second }

// Work implements river.Worker.
func (w *SignWorker) Work(ctx context.Context, job *river.Job[sshsign.SignArgs]) error {
	return w.svc.RunSign(ctx, sshsign.Job{
		ID: job.ID, Args: job.Args,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	})
}

// HostSignWorker runs ssh_sign_host jobs: it signs one node's host key and
// records the certificate in the transaction that completes the job.
type HostSignWorker struct {
	river.WorkerDefaults[sshsign.HostSignArgs]
	svc *sshsign.Service
}

// Timeout implements river.Worker.
func (w *HostSignWorker) Timeout(*river.Job[sshsign.HostSignArgs]) time.Duration {
	return 30 * time.Second
}

// Work implements river.Worker.
func (w *HostSignWorker) Work(ctx context.Context, job *river.Job[sshsign.HostSignArgs]) error {
	return w.svc.RunSignHost(ctx, sshsign.HostJob{
		ID: job.ID, Args: job.Args,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	})
}
