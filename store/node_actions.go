package store

import (
	"context"
	"time"
)

// EndOrphanNodeAction fails ("worker lost") a queued or running node
// action that no live worker will carry out: its River job ended
// (completed, cancelled, discarded: its worker died on the last attempt,
// say) or is gone, or the job is running but neither the action's
// heartbeat nor the job's attempt is younger than lostAfter (its worker
// died mid-action; River would rescue the job only after its timeout).
// Such a running job is cancelled in the same statement, so the node's
// next action is not refused as a duplicate job. It reports whether it
// ended the action. River's tables are outside sqlc's schema, so this is
// written by hand.
func EndOrphanNodeAction(ctx context.Context, db DBTX, actionID any, lostAfter time.Duration) (bool, error) {
	var ended int
	err := db.QueryRow(ctx, `WITH lost AS (
		SELECT a.id, a.job_id, EXISTS (SELECT 1 FROM river_job j WHERE j.id = a.job_id AND j.state = 'running') AS running
		FROM node_actions a
		WHERE a.id = $1 AND a.status IN ('queued', 'running')
		  AND (NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = a.job_id
		                   AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))
		       OR (coalesce(a.heartbeat_at, a.created_at) < now() - make_interval(secs => $2)
		           AND EXISTS (SELECT 1 FROM river_job j WHERE j.id = a.job_id AND j.state = 'running'
		                       AND j.attempted_at < now() - make_interval(secs => $2))))
		FOR UPDATE OF a
	), ended AS (
		UPDATE node_actions a SET status = 'failed', finished_at = now(), error = CASE WHEN lost.running
			THEN 'worker lost: the worker running this action stopped answering (no heartbeat): the cloud may or may not have done it; GET .../power/status says what it holds'
			ELSE 'worker lost: its job ended without an outcome (the worker died or the job was cancelled): the cloud may or may not have done it; GET .../power/status says what it holds' END
		FROM lost WHERE a.id = lost.id
		RETURNING a.id
	), cancelled AS (
		UPDATE river_job j SET state = 'cancelled', finalized_at = now(),
		    errors = array_append(j.errors, jsonb_build_object('at', now(), 'attempt', j.attempt,
		        'error', 'worker lost: the power action was ended failed by shardform', 'trace', ''))
		FROM lost WHERE lost.running AND j.id = lost.job_id AND j.state = 'running'
		RETURNING j.id
	)
	SELECT (SELECT count(*) FROM ended) + 0 * (SELECT count(*) FROM cancelled)`, actionID, lostAfter.Seconds()).Scan(&ended)
	if err != nil {
		return false, err
	}
	return ended == 1, nil
}
