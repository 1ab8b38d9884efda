package worker

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/shardform/shardform/sshsign"
)

// SignWorker runs ssh_sign jobs: it signs one certificate and records it
// before River completes the job.
type SignWorker struct {
	river.WorkerDefaults[sshsign.SignArgs]
	svc *sshsign.Service
}

// Timeout implements river.Worker: signing takes milliseconds.
func (w *SignWorker) Timeout(*river.Job[sshsign.SignArgs]) time.Duration { return 30 * time.Second }

// Work implements river.Worker.
func (w *SignWorker) Work(ctx context.Context, job *river.Job[sshsign.SignArgs]) error {
	return w.svc.RunSign(ctx, sshsign.Job{ID: job.ID, Attempt: job.Attempt, Args: job.Args})
}

// HostSignWorker runs ssh_sign_host jobs: it signs one node's host key and
// records the certificate before River completes the job.
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
	return w.svc.RunSignHost(ctx, sshsign.HostJob{ID: job.ID, Attempt: job.Attempt, Args: job.Args})
}
