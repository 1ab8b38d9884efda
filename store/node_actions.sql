-- name: InsertNodeAction :one
-- A new action, unless the node has one queued or running (no row then:
-- GetActiveNodeAction names it).
INSERT INTO node_actions (organization_id, node_id, kind, force, created_by)
VALUES (@organization_id, @node_id, @kind, @force, @created_by)
ON CONFLICT (node_id) WHERE status IN ('queued', 'running') DO NOTHING
RETURNING *;

-- name: GetActiveNodeAction :one
SELECT * FROM node_actions
WHERE organization_id = @organization_id AND node_id = @node_id AND status IN ('queued', 'running');

-- name: SetNodeActionJob :exec
UPDATE node_actions SET job_id = @job_id WHERE organization_id = @organization_id AND id = @id;

-- name: GetNodeAction :one
SELECT * FROM node_actions WHERE organization_id = @organization_id AND id = @id;

-- name: ListNodeActions :many
SELECT * FROM node_actions
WHERE organization_id = @organization_id AND node_id = @node_id
ORDER BY created_at DESC, id DESC
LIMIT @lim OFFSET @off;

-- name: CountNodeActions :one
SELECT count(*) FROM node_actions WHERE organization_id = @organization_id AND node_id = @node_id;

-- name: LatestNodeAction :one
SELECT * FROM node_actions
WHERE organization_id = @organization_id AND node_id = @node_id
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: StartNodeAction :one
-- The worker takes the action (again, on a retried attempt); no row when it
-- has finished.
UPDATE node_actions
SET status = 'running', attempt = @attempt, started_at = coalesce(started_at, now()), error = '', heartbeat_at = now()
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: HeartbeatNodeAction :exec
-- The worker carrying out a running action is alive.
UPDATE node_actions SET heartbeat_at = now()
WHERE organization_id = @organization_id AND id = @id AND status = 'running';

-- name: NoteNodeActionError :exec
-- A failed attempt that will be retried: its error stays visible meanwhile.
UPDATE node_actions SET error = @error
WHERE organization_id = @organization_id AND id = @id AND status = 'running';

-- name: FinishNodeAction :one
UPDATE node_actions SET status = @status, error = @error, finished_at = now()
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: SetNodePowerState :exec
-- Records the node's power state; a node already in it is not touched (an
-- update bumps the organization's node-set version).
UPDATE nodes SET power_state = @power_state, updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND power_state <> @power_state;

-- name: GetProvisionCredentialID :one
SELECT credential_id FROM provision_requests WHERE organization_id = @organization_id AND id = @id;

-- name: GetLocalMachine :one
SELECT * FROM local_machines WHERE node_id = @node_id;

-- name: SetLocalMachine :one
-- Powers a local node's machine on or off; boot counts a start or reboot.
INSERT INTO local_machines (node_id, power_state, boots)
VALUES (@node_id, @power_state, CASE WHEN @boot::boolean THEN 1 ELSE 0 END)
ON CONFLICT (node_id) DO UPDATE SET power_state = excluded.power_state,
    boots = local_machines.boots + CASE WHEN @boot::boolean THEN 1 ELSE 0 END, updated_at = now()
RETURNING *;

-- name: SetNodeAddresses :one
-- A machine's public addresses changed with a power cycle (EC2 without an
-- Elastic IP gets a new IPv4 at every start); a node that has them already
-- is not touched (no row).
UPDATE nodes SET ipv4 = @ipv4, ipv6 = @ipv6, updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND (ipv4 <> @ipv4 OR ipv6 <> @ipv6)
RETURNING *;

-- name: DeleteOldNodeActions :execrows
-- Maintenance (every organization): finished power actions older than
-- @days days, but never a node's latest (its power status shows it).
DELETE FROM node_actions a
WHERE a.status IN ('succeeded', 'failed') AND a.finished_at < now() - make_interval(days => @days::int)
  AND EXISTS (SELECT 1 FROM node_actions b
              WHERE b.organization_id = a.organization_id AND b.node_id = a.node_id AND b.created_at > a.created_at);

-- name: GetActiveNodeActionOfProvision :one
-- The power action queued or running on the node of a provision request
-- (a Terraform run of the request waits for it).
SELECT a.* FROM node_actions a JOIN nodes n ON n.id = a.node_id AND n.organization_id = a.organization_id
WHERE a.organization_id = @organization_id AND n.provision_id = @provision_id AND a.status IN ('queued', 'running');
