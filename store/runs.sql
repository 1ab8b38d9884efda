-- name: InsertRun :one
INSERT INTO provision_runs (organization_id, provision_id, kind, created_by)
VALUES (@organization_id, @provision_id, @kind, @created_by)
RETURNING *;

-- name: SetRunJob :exec
UPDATE provision_runs SET job_id = sqlc.arg(job_id)::bigint WHERE organization_id = @organization_id AND id = @id;

-- name: GetRun :one
SELECT * FROM provision_runs WHERE organization_id = @organization_id AND id = @id;

-- name: GetRunView :one
-- A run as the API shows it: as ListRuns, without the saved and rendered plans.
SELECT id, organization_id, provision_id, kind, status, created_by, job_id, attempt, queued_at, started_at, finished_at,
       worker, terraform_version, exit_code, error, changes, drifted, drift, cancel_requested, auto_apply,
       (plan_json IS NOT NULL)::boolean AS plan_rendered
FROM provision_runs WHERE organization_id = @organization_id AND id = @id;

-- name: GetRunForUpdate :one
SELECT * FROM provision_runs WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: ActiveRunOf :one
-- The request's queued or running run (at most one: provision_runs_one_active).
SELECT * FROM provision_runs
WHERE organization_id = @organization_id AND provision_id = @provision_id AND status IN ('queued', 'running');

-- name: ListRuns :many
-- Every column a run's view shows, but not the saved plan and the rendered
-- JSON plan (large): only whether it was rendered.
SELECT id, organization_id, provision_id, kind, status, created_by, job_id, attempt, queued_at, started_at, finished_at,
       worker, terraform_version, exit_code, error, changes, drifted, drift, cancel_requested, auto_apply,
       (plan_json IS NOT NULL)::boolean AS plan_rendered
FROM provision_runs
WHERE organization_id = @organization_id AND provision_id = @provision_id
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind))
ORDER BY queued_at DESC, id
LIMIT @lim OFFSET @off;

-- name: CountRuns :one
SELECT count(*) FROM provision_runs
WHERE organization_id = @organization_id AND provision_id = @provision_id
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind));

-- name: StartRun :one
-- A worker takes the run for this attempt; nothing when it has finished
-- (cancelled before the job ran) or another attempt holds it.
UPDATE provision_runs
SET status = 'running', attempt = @attempt, worker = @worker, terraform_version = @terraform_version,
    started_at = coalesce(started_at, now()), error = '', job_id = coalesce(job_id, @job_id)
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running') AND attempt < @attempt
RETURNING *;

-- name: FinishRun :one
-- The outcome of the attempt that holds the run; no row when another
-- attempt took it meanwhile (then this one records nothing).
UPDATE provision_runs
SET status = @status, finished_at = now(), exit_code = sqlc.narg(exit_code), error = @error,
    changes = coalesce(sqlc.narg(changes), changes), drifted = coalesce(sqlc.narg(drifted), drifted),
    drift = coalesce(sqlc.narg(drift), drift)
WHERE organization_id = @organization_id AND id = @id AND status = 'running' AND attempt = @attempt
RETURNING *;

-- name: EndRunNow :one
-- A run whose job will not run it (it never started, waits for a retry, or
-- ended without it) ends here, cancelled or failed.
UPDATE provision_runs SET status = @status, finished_at = now(), error = @error
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: RequestRunCancel :one
UPDATE provision_runs SET cancel_requested = @cancel_requested
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: RunCancelRequested :one
SELECT cancel_requested FROM provision_runs WHERE id = @id;

-- name: SetRunPlanFile :exec
UPDATE provision_runs SET plan_file = @plan_file WHERE organization_id = @organization_id AND id = @id;

-- name: SetRunPlanJSON :exec
-- The rendered plan replaces the saved one, which is no longer needed.
UPDATE provision_runs SET plan_json = @plan_json, changes = @changes, plan_file = NULL
WHERE organization_id = @organization_id AND id = @id;

-- name: SetProvisionPlanRun :exec
UPDATE provision_requests SET plan_run_id = @plan_run_id WHERE organization_id = @organization_id AND id = @id;

-- name: LatestRefreshRun :one
SELECT * FROM provision_runs
WHERE organization_id = @organization_id AND provision_id = @provision_id AND kind = 'refresh' AND status = 'succeeded'
ORDER BY finished_at DESC
LIMIT 1;

-- name: RunningRuns :many
-- Every running run, locked for this transaction, skipping those another
-- rescuer is looking at.
SELECT id, organization_id, provision_id, job_id, attempt, worker FROM provision_runs
WHERE status = 'running'
FOR UPDATE SKIP LOCKED;

-- name: TryRunHolder :one
-- True when no session holds the run's advisory lock (its holder is gone):
-- the lock is taken for this transaction only. lock_name is
-- provision.runLockName(run id), as the holder's session took it.
SELECT pg_try_advisory_xact_lock(hashtextextended(@lock_name::text, 0));

-- name: RequeueRun :exec
UPDATE provision_runs SET status = 'queued', error = @error
WHERE id = @id AND status = 'running' AND attempt = @attempt;

-- name: ApplicableRequestsForDrift :many
-- Applied requests with no run in progress, for the periodic drift check.
SELECT p.organization_id, p.id FROM provision_requests p
WHERE p.status = 'applied'
  AND NOT EXISTS (SELECT 1 FROM provision_runs r WHERE r.provision_id = p.id AND r.status IN ('queued', 'running'))
ORDER BY p.updated_at
LIMIT @lim;

-- name: AppendRunLog :exec
INSERT INTO provision_logs (provision_id, run_id, operation, chunk) VALUES (@provision_id, @run_id, @operation, @chunk);

-- name: ListRunLogs :many
SELECT l.id, l.operation, l.chunk, l.created_at
FROM provision_logs l
JOIN provision_runs r ON r.id = l.run_id
WHERE r.organization_id = @organization_id AND l.run_id = @run_id AND l.id > @after_id
ORDER BY l.id
LIMIT 1000;

-- name: LatestRunsOf :many
-- Each request's newest runs (at most @per of each), for search's runs
-- extend; as ListRuns, without the saved and rendered plans.
SELECT r.id, r.organization_id, r.provision_id, r.kind, r.status, r.created_by, r.job_id, r.attempt, r.queued_at, r.started_at, r.finished_at,
       r.worker, r.terraform_version, r.exit_code, r.error, r.changes, r.drifted, r.drift, r.cancel_requested, r.auto_apply,
       (r.plan_json IS NOT NULL)::boolean AS plan_rendered
FROM provision_runs r
WHERE r.organization_id = @organization_id AND r.provision_id = ANY(@provision_ids::uuid[])
  AND r.id IN (SELECT l.id FROM provision_runs l
               WHERE l.organization_id = r.organization_id AND l.provision_id = r.provision_id
               ORDER BY l.queued_at DESC, l.id LIMIT @per)
ORDER BY r.provision_id, r.queued_at DESC, r.id;

-- name: LatestRefreshRunsOf :many
-- Each request's last succeeded refresh run (its drift verdict).
SELECT DISTINCT ON (provision_id) * FROM provision_runs
WHERE organization_id = @organization_id AND provision_id = ANY(@provision_ids::uuid[])
  AND kind = 'refresh' AND status = 'succeeded'
ORDER BY provision_id, finished_at DESC;

-- name: ClearOldPlanFiles :execrows
-- The retention of saved plans (sealed, they hold the variables' values):
-- plan runs that finished more than @days days ago lose theirs, applied or
-- not (the request keeps its own copy for an apply).
UPDATE provision_runs SET plan_file = NULL
WHERE kind = 'plan' AND plan_file IS NOT NULL AND finished_at < now() - make_interval(days => @days::int);
