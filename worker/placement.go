package worker

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/shardform/shardform/placement"
)

// DrainWorker runs node_drain jobs: the moves of one drain.
type DrainWorker struct {
	river.WorkerDefaults[placement.DrainArgs]
	svc *placement.Service
}

// Timeout implements river.Worker: a move is a few milliseconds; a drain of
// thousands of instances fits many times over.
func (w *DrainWorker) Timeout(*river.Job[placement.DrainArgs]) time.Duration {
	return 15 * time.Minute
}

// Work implements river.Worker. A failed attempt is retried and goes on
// from the moves still pending; after the last one the drain is recorded
// failed with the error (placement.Service.WorkDrain).
func (w *DrainWorker) Work(ctx context.Context, job *river.Job[placement.DrainArgs]) error {
	return w.svc.WorkDrain(ctx, job.Args, job.Attempt >= job.MaxAttempts)
}
