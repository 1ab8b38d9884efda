-- name: CreateRegistrationToken :one
INSERT INTO node_registration_tokens (organization_id, provision_id, created_by, name, labels, display_prefix, token_hash, uses_allowed, not_before, expires_at)
VALUES (@organization_id, sqlc.narg(provision_id), sqlc.narg(created_by), @name, @labels, @display_prefix, @token_hash, @uses_allowed, @not_before, @expires_at)
RETURNING *;

-- name: ListRegistrationTokens :many
SELECT * FROM node_registration_tokens
WHERE organization_id = @organization_id
ORDER BY created_at DESC, id
LIMIT @lim OFFSET @off;

-- name: CountRegistrationTokens :one
SELECT count(*) FROM node_registration_tokens WHERE organization_id = @organization_id;

-- name: DeleteRegistrationToken :execrows
DELETE FROM node_registration_tokens WHERE organization_id = @organization_id AND id = @id;

-- name: ClaimRegistrationToken :one
-- Spends one use of a live token, atomically: two registrations racing for
-- the last use cannot both win.
UPDATE node_registration_tokens SET uses = uses + 1, last_used_at = @now::timestamptz
WHERE token_hash = @token_hash AND uses < uses_allowed AND not_before <= @now AND expires_at > @now
RETURNING *;

-- GetNodeOfProvision (store/dns.sql) reads a provision request's node.

-- name: InsertBYONode :one
INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, ipv4, ipv6, labels)
VALUES (@organization_id, @name, 'byo', '', 'byo', @vcpu, @memory_mb, @disk_gb, @ipv4, @ipv6, @labels)
RETURNING *;

-- name: UpdateJoinedNodeAddresses :one
-- A provisioned node that joins keeps its record; addresses it reports fill
-- what the cloud's outputs left empty.
UPDATE nodes SET ipv4 = CASE WHEN ipv4 = '' THEN @ipv4 ELSE ipv4 END,
    ipv6 = CASE WHEN ipv6 = '' THEN @ipv6 ELSE ipv6 END, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: UpsertNodeAgent :one
INSERT INTO node_agents (node_id, organization_id, token_hash, display_prefix, registration_token_id, hostname, host_public_keys, facts, registered_at, last_seen_at)
VALUES (@node_id, @organization_id, @token_hash, @display_prefix, @registration_token_id, @hostname, @host_public_keys, @facts, @now, @now)
ON CONFLICT (node_id) DO UPDATE SET token_hash = excluded.token_hash, display_prefix = excluded.display_prefix,
    registration_token_id = excluded.registration_token_id, hostname = excluded.hostname,
    host_public_keys = excluded.host_public_keys, facts = excluded.facts, registered_at = excluded.registered_at,
    rotated_at = NULL, last_seen_at = excluded.last_seen_at
RETURNING *;

-- name: AuthenticateAgent :one
SELECT a.node_id, a.organization_id, n.name AS node_name
FROM node_agents a JOIN nodes n ON n.id = a.node_id AND n.organization_id = a.organization_id
WHERE a.token_hash = @token_hash;

-- name: RotateAgentToken :execrows
UPDATE node_agents SET token_hash = @token_hash, display_prefix = @display_prefix, rotated_at = @now::timestamptz
WHERE organization_id = @organization_id AND node_id = @node_id;

-- name: RecordHeartbeat :one
UPDATE node_agents SET last_seen_at = @now::timestamptz, version = @version,
    inventory = CASE WHEN @inventory::jsonb = 'null'::jsonb THEN inventory ELSE @inventory::jsonb END
WHERE organization_id = @organization_id AND node_id = @node_id
RETURNING *;

-- name: GetNodeAgent :one
SELECT * FROM node_agents WHERE organization_id = @organization_id AND node_id = @node_id;

-- name: ListNodeAgents :many
SELECT a.node_id, a.organization_id, a.display_prefix, a.hostname, a.version, a.registered_at, a.rotated_at, a.last_seen_at,
    n.name AS node_name, n.provider, n.status
FROM node_agents a JOIN nodes n ON n.id = a.node_id AND n.organization_id = a.organization_id
WHERE a.organization_id = @organization_id
ORDER BY a.registered_at, a.node_id
LIMIT @lim OFFSET @off;

-- name: CountNodeAgents :one
SELECT count(*) FROM node_agents WHERE organization_id = @organization_id;

-- name: GetNodeInventory :one
SELECT a.node_id, a.inventory, a.last_seen_at, a.version
FROM node_agents a
WHERE a.organization_id = @organization_id AND a.node_id = @node_id;

-- name: NodeExists :one
SELECT EXISTS (SELECT 1 FROM nodes WHERE organization_id = @organization_id AND id = @id);

-- name: MarkUnreachableNodes :execrows
-- The periodic sweep, over every organization (a system job, like the
-- drift sweep): ready nodes whose agent was last seen before the cutoff.
UPDATE nodes n SET status = 'unreachable', updated_at = now()
FROM node_agents a
WHERE a.node_id = n.id AND a.organization_id = n.organization_id
  AND n.status = 'ready' AND a.last_seen_at < @cutoff::timestamptz;

-- name: MarkNodeReachable :exec
UPDATE nodes SET status = 'ready', updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND status = 'unreachable';

-- name: DeleteUnusedProvisionTokens :exec
DELETE FROM node_registration_tokens
WHERE organization_id = @organization_id AND provision_id = @provision_id AND uses = 0;

-- name: ActivateProvisionTokens :execrows
UPDATE node_registration_tokens
SET not_before = COALESCE(sqlc.narg(not_before)::timestamptz, not_before), expires_at = @expires_at::timestamptz
WHERE organization_id = @organization_id AND provision_id = @provision_id AND uses < uses_allowed;
