package worker

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/shardform/shardform/agent"
)

// UnreachableSweepWorker marks nodes whose agents went silent unreachable.
type UnreachableSweepWorker struct {
	river.WorkerDefaults[agent.UnreachableSweepArgs]
	svc *agent.Service
}

// Work implements river.Worker.
func (w *UnreachableSweepWorker) Work(ctx context.Context, _ *river.Job[agent.UnreachableSweepArgs]) error {
	n, err := w.svc.SweepUnreachable(ctx)
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, map[string]int64{"unreachable": n})
}
