package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// EndOrphanMigrations ends the queued or running drains of an organization
// whose River job will not carry them out: the job ended (completed,
// cancelled in River UI, discarded after its last attempt) without
// recording an outcome, or its row is gone. A drain a cancel was asked for
// ends cancelled, any other failed, saying why; its moves still pending are
// cancelled (the moves made stay made). node or id, when valid, narrow it
// to one node's or one migration. It answers the migrations it ended.
// River's tables are outside sqlc's schema, so this is written by hand.
func EndOrphanMigrations(ctx context.Context, db DBTX, org uuid.UUID, node, id uuid.NullUUID) ([]uuid.UUID, error) {
	rows, err := db.Query(ctx, `WITH ended AS (
		    UPDATE migrations m
		    SET status = CASE WHEN m.cancel_requested THEN 'cancelled' ELSE 'failed' END,
		        error = CASE WHEN m.cancel_requested THEN '' ELSE
		            format('its job (River job %s) is %s without recording an outcome: the moves left are cancelled, the moves made stay made; drain again to move the rest',
		                   m.job_id, coalesce((SELECT j.state::text FROM river_job j WHERE j.id = m.job_id), 'deleted')) END,
		        finished_at = now(), updated_at = now()
		    WHERE m.organization_id = $1 AND ($2::uuid IS NULL OR m.node_id = $2) AND ($3::uuid IS NULL OR m.id = $3)
		      AND m.status IN ('queued', 'running') AND m.job_id IS NOT NULL
		      AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = m.job_id
		                      AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))
		    RETURNING m.id, m.cancel_requested
		), moves AS (
		    UPDATE migration_moves mv
		    SET status = 'cancelled', finished_at = now(),
		        reason = CASE WHEN e.cancel_requested THEN 'cancelled' ELSE 'the drain''s job ended without an outcome' END
		    FROM ended e
		    WHERE mv.migration_id = e.id AND mv.status = 'pending'
		)
		SELECT id FROM ended`, org, node, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SuspectDrain is a queued or running drain whose job is no longer active
// (see EndOrphanMigrations), or has been running for a while: its worker
// may be dead.
type SuspectDrain struct {
	OrganizationID uuid.UUID
	ID             uuid.UUID
	JobID          int64
	JobState       string // "" when the job row is gone
}

// SuspectDrains lists such drains of every organization (at most 100), for
// the rescuer: a job running for longer than startGrace has had the time
// to take its drain's liveness lock.
func SuspectDrains(ctx context.Context, db DBTX, startGrace time.Duration) ([]SuspectDrain, error) {
	rows, err := db.Query(ctx, `SELECT m.organization_id, m.id, m.job_id, coalesce(j.state::text, '')
		FROM migrations m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.status IN ('queued', 'running') AND m.job_id IS NOT NULL
		  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded')
		       OR (j.state = 'running' AND j.attempted_at < now() - make_interval(secs => $1)))
		ORDER BY m.created_at
		LIMIT 100`, startGrace.Seconds())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SuspectDrain
	for rows.Next() {
		var d SuspectDrain
		if err := rows.Scan(&d.OrganizationID, &d.ID, &d.JobID, &d.JobState); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
