package store

import (
	"context"
	"time"
)

// EndOrphanNodeAction fails a queued or running node action whose River job
// will not carry it out: the job ended (completed, cancelled, discarded:
// its worker died on the last attempt, say) or is gone. It reports whether
// it did. River's tables are outside sqlc's schema, so this is written by
// hand.
func EndOrphanNodeAction(ctx context.Context, db DBTX, actionID any) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE node_actions a
		SET status = 'failed', error = 'its job ended without an outcome (the worker died or the job was cancelled): the cloud may or may not have done it; GET .../power/status says what it holds', finished_at = now()
		WHERE a.id = $1 AND a.status IN ('queued', 'running')
		  AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = a.job_id
		                  AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))`, actionID)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// RetryStaleJob makes a River job that has been running for longer than
// olderThan available again (as RetryJob does): its worker is gone, since
// River cancels a job at its timeout. It reports whether it did.
func RetryStaleJob(ctx context.Context, db DBTX, jobID int64, olderThan time.Duration, reason string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE river_job
		SET state = 'available', scheduled_at = least(scheduled_at, now()),
		    errors = array_append(errors, jsonb_build_object('at', now(), 'attempt', attempt, 'error', $3::text, 'trace', ''))
		WHERE id = $1 AND state = 'running' AND attempted_at < now() - make_interval(secs => $2)`, jobID, olderThan.Seconds(), reason)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
