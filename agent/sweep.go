package agent

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// KindUnreachableSweep is the periodic job that marks silent nodes unreachable.
const KindUnreachableSweep = "agent_unreachable_sweep"

// MissedHeartbeats is how many heartbeat intervals of silence make a node
// unreachable.
const MissedHeartbeats = 3

// UnreachableSweepArgs is the periodic sweep's job (no arguments).
type UnreachableSweepArgs struct{}

// Kind implements river.JobArgs.
func (UnreachableSweepArgs) Kind() string { return KindUnreachableSweep }

// InsertOpts: on the maintenance queue, one at a time.
func (UnreachableSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "maintenance", MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}}}
}

// SweepUnreachable marks unreachable every ready node whose agent has not
// sent a heartbeat for MissedHeartbeats intervals; placement and
// suggest-fit skip them until the next heartbeat makes them ready again.
// A node an operator cordoned or put in maintenance keeps that status.
func (s *Service) SweepUnreachable(ctx context.Context) (int64, error) {
	cutoff := s.now().Add(-MissedHeartbeats * s.opts.HeartbeatInterval)
	n, err := s.q.MarkUnreachableNodes(ctx, s.st.Pool, cutoff)
	if err != nil {
		return 0, fmt.Errorf("sweep unreachable nodes: %w", err)
	}
	return n, nil
}
