package store

import (
	"context"

	"github.com/google/uuid"
)

// ClearSpentPlanFiles drops the saved plan (sealed; it holds the
// variables' values) of the request's plan runs but keep (uuid.Nil: none
// kept), once it was applied or superseded by a newer plan of the request.
// A run whose render job (provision_render_plan, for review) is still to
// run keeps its plan: that job renders it, then drops it. It returns how
// many runs lost theirs. River's tables are outside sqlc's schema, so this
// is written by hand.
func ClearSpentPlanFiles(ctx context.Context, db DBTX, orgID, provisionID, keep uuid.UUID) (int64, error) {
	tag, err := db.Exec(ctx, `UPDATE provision_runs r SET plan_file = NULL
		WHERE r.organization_id = $1 AND r.provision_id = $2 AND r.id <> $3
		  AND r.kind = 'plan' AND r.plan_file IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM river_job j
		                  WHERE j.kind = 'provision_render_plan' AND j.args @> jsonb_build_object('run_id', r.id::text)
		                    AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))`, orgID, provisionID, keep)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
