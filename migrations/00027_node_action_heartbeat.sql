-- +goose Up
-- A running power action proves its worker alive: the worker sets
-- heartbeat_at when it takes the action and every few seconds while it
-- works. An action whose River job is running but whose heartbeat (and the
-- job's attempt) is older than the lost-worker bound lost its worker: a
-- power status read, the node's next power request or a run of its
-- provision request ends it failed ("worker lost") instead of leaving the
-- node blocked until River rescues the job.
ALTER TABLE node_actions ADD COLUMN heartbeat_at timestamptz;

-- +goose Down
ALTER TABLE node_actions DROP COLUMN heartbeat_at;
