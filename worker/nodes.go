package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/nodeops"
)

// NodeActionWorker runs node_action jobs (power actions) on the nodes queue.
type NodeActionWorker struct {
	river.WorkerDefaults[nodeops.ActionArgs]
	svc *nodeops.Service
}

// Timeout implements river.Worker: a graceful stop's timeout and more.
func (w *NodeActionWorker) Timeout(*river.Job[nodeops.ActionArgs]) time.Duration {
	return w.svc.Timeout()
}

// Work implements river.Worker.
func (w *NodeActionWorker) Work(ctx context.Context, job *river.Job[nodeops.ActionArgs]) error {
	return w.svc.Run(ctx, nodeops.Job{
		Args: job.Args, JobID: job.ID, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		},
	})
}

// NodeAddressesWorker runs node_addresses jobs: the addresses a power
// action could not read after a start or reboot.
type NodeAddressesWorker struct {
	river.WorkerDefaults[nodeops.AddressesArgs]
	svc *nodeops.Service
}

// Work implements river.Worker.
func (w *NodeAddressesWorker) Work(ctx context.Context, job *river.Job[nodeops.AddressesArgs]) error {
	return w.svc.RunAddresses(ctx, job.Args)
}
