-- +goose Up
-- Drains and migrations of nodes (package placement): each POST
-- /v1/nodes/{id}/drain or /migrate is a migration record with one row per
-- instance to move. The records name their nodes and instances by id and
-- name without foreign keys, so they outlive a deleted node or instance
-- (and deleting either never touches them).
CREATE TABLE migrations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('drain', 'migrate')),
    node_id          uuid NOT NULL,
    node_name        text NOT NULL,
    -- migrate: the one node every instance goes to.
    target_node_id   uuid,
    target_node_name text NOT NULL DEFAULT '',
    strategy         text NOT NULL DEFAULT '' CHECK (strategy IN ('', 'binpack', 'spread')),
    -- partial: the drain ended with instances that fit nowhere (moves with
    -- status failed, each with its reason).
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    error            text NOT NULL DEFAULT '',
    job_id           bigint,
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX migrations_org_idx ON migrations (organization_id, created_at DESC, id);
-- One drain or migration of a node at a time: a second is 409 naming the first.
CREATE UNIQUE INDEX migrations_active_node_key ON migrations (node_id) WHERE status IN ('queued', 'running');

-- The instances a migration moves, in the order it moves them (largest
-- first), with where each went or why it stayed.
CREATE TABLE migration_moves (
    migration_id   uuid NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
    position       integer NOT NULL,
    instance_id    uuid NOT NULL,
    instance_name  text NOT NULL,
    cpu_millis     integer NOT NULL,
    memory_mb      integer NOT NULL,
    disk_gb        integer NOT NULL,
    -- pending: not tried yet; moved; failed: it stayed (reason); skipped:
    -- deleted or moved elsewhere meanwhile; cancelled: left by a cancel.
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'moved', 'failed', 'skipped', 'cancelled')),
    to_node_id     uuid,
    to_node_name   text NOT NULL DEFAULT '',
    reason         text NOT NULL DEFAULT '',
    finished_at    timestamptz,
    PRIMARY KEY (migration_id, position)
);

-- +goose Down
DROP TABLE migration_moves;
DROP TABLE migrations;
