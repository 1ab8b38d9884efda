-- +goose Up
-- Power actions on nodes (start, stop, reboot), carried out through the
-- cloud's API by node_action jobs on the nodes queue. Terraform does not
-- model power, so what shardform records of it lives here: each node's
-- power state as last seen or set (the node's status reads "stopped" while
-- it is off, and suggest-fit and placement skip it), and every action.
ALTER TABLE nodes ADD COLUMN power_state text NOT NULL DEFAULT 'running'
    CHECK (power_state IN ('running', 'stopped'));

CREATE TABLE node_actions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    node_id         uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('start', 'stop', 'reboot')),
    -- stop only: power off at once instead of a graceful shutdown first.
    force           boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    error           text NOT NULL DEFAULT '',
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    -- the River job that carries it out, and its attempt now running (or last run).
    job_id          bigint,
    attempt         integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    FOREIGN KEY (node_id, organization_id) REFERENCES nodes (id, organization_id) ON DELETE CASCADE
);
-- One action queued or running per node: a second is refused (409 naming
-- the first), whatever the processes do.
CREATE UNIQUE INDEX node_actions_one_active ON node_actions (node_id) WHERE status IN ('queued', 'running');
CREATE INDEX node_actions_node_idx ON node_actions (node_id, created_at DESC, id DESC);

-- The local driver's "machines": the power state a local node's cloud
-- would hold (no row: running, as after an apply), so the whole flow can
-- be tried without a cloud.
CREATE TABLE local_machines (
    node_id     uuid PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    power_state text NOT NULL CHECK (power_state IN ('running', 'stopped')),
    -- how many times it was started or rebooted: a reboot is visible.
    boots       integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE local_machines;
DROP TABLE node_actions;
ALTER TABLE nodes DROP COLUMN power_state;
