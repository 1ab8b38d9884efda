-- +goose Up
-- Every plan, apply, destroy and refresh of a provision request is a run
-- with its own status, timings, logs and resource changes (the request's
-- status follows its runs). At most one run of a request is queued or
-- running at a time: the partial unique index is what makes a second run
-- (or the same run twice) impossible, whatever the processes do.
CREATE TABLE provision_runs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provision_id      uuid NOT NULL REFERENCES provision_requests (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('plan', 'apply', 'destroy', 'refresh')),
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    -- the River job that runs it.
    job_id            bigint,
    -- the job's attempt now running (or last run): a retried run keeps its id.
    attempt           integer NOT NULL DEFAULT 0,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    -- the worker process (SHARDFORM_WORKER_NAME) of the last attempt.
    worker            text NOT NULL DEFAULT '',
    terraform_version text NOT NULL DEFAULT '',
    -- Terraform's exit code of the run's last command; NULL before one ran.
    exit_code         integer,
    error             text NOT NULL DEFAULT '',
    -- {add, change, destroy, resources: [{address, type, action}]} from
    -- the plan's stream (plan and refresh runs).
    changes           jsonb,
    -- a plan run's saved plan, sealed as the request's copy is (it holds
    -- variable values), kept until it is rendered for review.
    plan_file         bytea,
    -- the JSON plan (terraform show -json) with sensitive values masked,
    -- rendered when first asked for (GET /v1/runs/{id}/plan).
    plan_json         jsonb,
    -- a refresh run's verdict and what drifted.
    drifted           boolean,
    drift             jsonb,
    -- '' | 'cancel' | 'force': a cancel asked of a running run.
    cancel_requested  text NOT NULL DEFAULT '' CHECK (cancel_requested IN ('', 'cancel', 'force'))
);
CREATE UNIQUE INDEX provision_runs_one_active ON provision_runs (provision_id) WHERE status IN ('queued', 'running');
CREATE INDEX provision_runs_provision_idx ON provision_runs (provision_id, queued_at DESC);
CREATE INDEX provision_runs_running_idx ON provision_runs (status) WHERE status = 'running';

-- The run whose saved plan the request holds (apply applies it).
ALTER TABLE provision_requests ADD COLUMN plan_run_id uuid REFERENCES provision_runs (id) ON DELETE SET NULL;

-- Each chunk of output belongs to its run (NULL for output stored before runs existed).
ALTER TABLE provision_logs ADD COLUMN run_id uuid REFERENCES provision_runs (id) ON DELETE CASCADE;
CREATE INDEX provision_logs_run_idx ON provision_logs (run_id, id) WHERE run_id IS NOT NULL;

-- A state lock names the worker process of the run holding it.
ALTER TABLE tf_state_locks ADD COLUMN worker text NOT NULL DEFAULT '';
ALTER TABLE tf_run_credentials ADD COLUMN worker text NOT NULL DEFAULT '';

-- A run's follower (GET /v1/runs/{id}/logs?follow=1) wakes when its status
-- changes, on the channel of migration 00015 (the payload is the request id).
CREATE TRIGGER provision_runs_status_notify AFTER UPDATE OF status ON provision_runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION shardform_notify_provision_log();

-- +goose Down
DROP TRIGGER provision_runs_status_notify ON provision_runs;
ALTER TABLE tf_run_credentials DROP COLUMN worker;
ALTER TABLE tf_state_locks DROP COLUMN worker;
DROP INDEX provision_logs_run_idx;
ALTER TABLE provision_logs DROP COLUMN run_id;
ALTER TABLE provision_requests DROP COLUMN plan_run_id;
DROP TABLE provision_runs;
