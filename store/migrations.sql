-- name: CordonNode :exec
-- A drain or migration cordons its node: a ready node becomes cordoned, and
-- so does an unreachable one (which would be ready again at its next
-- heartbeat); a node in maintenance keeps its status. A stopped node's
-- status is its power state's: the stored status is cordoned the same way.
UPDATE nodes SET status = 'cordoned', updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND status IN ('ready', 'unreachable');

-- name: SetNodeSchedulable :one
-- POST /v1/nodes/{id}/cordon and /uncordon: from ready (or unreachable) to
-- cordoned and back to ready. A node in another status keeps it (the
-- caller answers 409).
UPDATE nodes SET status = @status::text, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
  AND (status IN ('ready', 'cordoned') OR (status = 'unreachable' AND @status::text = 'cordoned'))
RETURNING *;

-- name: ListNodeInstancesForMove :many
-- The instances on a node, largest first (memory, then cpu, then disk): the
-- order a drain places them in (first-fit decreasing).
SELECT id, name, cpu_millis, memory_mb, disk_gb
FROM instances
WHERE organization_id = @organization_id AND node_id = @node_id
ORDER BY memory_mb DESC, cpu_millis DESC, disk_gb DESC, name, id;

-- name: ListMoveTargets :many
-- The other nodes of the organization in a provider and region, with their
-- aggregated reservations: a drain's candidate targets. A node that is
-- powered off reads as status "stopped".
SELECT id, name, (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END)::text AS status, vcpu, memory_mb, disk_gb,
       reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count,
       desired_instance_type, desired_vcpu, desired_memory_mb, desired_disk_gb
FROM nodes
WHERE organization_id = @organization_id AND provider = @provider AND region = @region AND id <> @exclude
ORDER BY name, id;

-- name: InsertMigration :one
INSERT INTO migrations (id, organization_id, kind, node_id, node_name, target_node_id, target_node_name,
                        strategy, status, job_id, created_by, started_at, finished_at)
VALUES (@id, @organization_id, @kind, @node_id, @node_name, @target_node_id, @target_node_name,
        @strategy, @status, @job_id, @created_by, @started_at, @finished_at)
RETURNING *;

-- name: InsertMigrationMoves :exec
-- Every move of a migration at once, in order.
INSERT INTO migration_moves (migration_id, position, instance_id, instance_name, cpu_millis, memory_mb, disk_gb,
                             status, to_node_id, to_node_name, finished_at)
SELECT @migration_id, unnest(@positions::integer[]), unnest(@instance_ids::uuid[]), unnest(@instance_names::text[]),
       unnest(@cpu_millis::integer[]), unnest(@memory_mb::integer[]), unnest(@disk_gb::integer[]),
       @status, sqlc.narg(to_node_id)::uuid, @to_node_name,
       CASE WHEN @status::text = 'pending' THEN NULL ELSE now() END;

-- name: GetActiveMigrationOfNode :one
SELECT id, kind, status FROM migrations
WHERE organization_id = @organization_id AND node_id = @node_id AND status IN ('queued', 'running');

-- name: GetMigration :one
SELECT * FROM migrations WHERE organization_id = @organization_id AND id = @id;

-- name: GetMigrationForUpdate :one
SELECT * FROM migrations WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: ListMigrations :many
SELECT * FROM migrations
WHERE organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR node_id = sqlc.narg(node_id) OR target_node_id = sqlc.narg(node_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind))
ORDER BY created_at DESC, id DESC
LIMIT @lim OFFSET @off;

-- name: CountMigrations :one
SELECT count(*) FROM migrations
WHERE organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR node_id = sqlc.narg(node_id) OR target_node_id = sqlc.narg(node_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind));

-- name: CountMigrationMoves :many
-- The moves of some migrations by status (the list's counters).
SELECT migration_id, status, count(*)::integer AS n
FROM migration_moves
WHERE migration_id = ANY(@ids::uuid[])
GROUP BY migration_id, status;

-- name: ListMigrationMoves :many
SELECT * FROM migration_moves WHERE migration_id = @migration_id ORDER BY position;

-- name: StartMigration :one
-- The job takes its migration: queued (or running, when River runs the job
-- again after its worker died) becomes running. No row: it was cancelled
-- while queued, or has ended.
UPDATE migrations SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: FinishMove :one
-- Records one move's outcome and answers whether a cancel was asked for
-- since (checked before the next move): one statement per move.
WITH mv AS (
    UPDATE migration_moves SET status = @status, to_node_id = sqlc.narg(to_node_id), to_node_name = @to_node_name,
                               reason = @reason, finished_at = now()
    WHERE migration_id = @migration_id AND position = @position
)
UPDATE migrations SET updated_at = now()
WHERE organization_id = @organization_id AND id = @migration_id
RETURNING cancel_requested;

-- name: FinishMigration :exec
-- Ends a migration; moves still pending are left by the cancel (or the
-- error) that ended it.
WITH left_moves AS (
    UPDATE migration_moves SET status = 'cancelled', reason = @reason, finished_at = now()
    WHERE migration_id = @id AND status = 'pending'
)
UPDATE migrations SET status = @status, error = @error, finished_at = now(), updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: RequestMigrationCancel :one
UPDATE migrations SET cancel_requested = true, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: MoveAllInstances :execrows
-- POST /v1/nodes/{id}/migrate: every instance of a node to another, in one
-- statement (the reservation triggers update both nodes once).
UPDATE instances SET node_id = @to_node_id
WHERE organization_id = @organization_id AND node_id = @from_node_id;

-- name: LockNodeOfProvision :one
-- The node of a provision request being destroyed, locked as a placement
-- locks it: no instance lands on it between the check and the cordon.
SELECT id, name, status, instance_count FROM nodes
WHERE organization_id = @organization_id AND provision_id = @provision_id
FOR NO KEY UPDATE;

-- name: LockNodePair :many
-- A drain's move locks the drained node and the target in id order (the
-- order of every placement and move) in one statement: the rows are
-- locked as they come out of the sort. A node that is powered off reads as
-- status "stopped".
SELECT id, name, (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END)::text AS status, vcpu, memory_mb, disk_gb,
       reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count,
       desired_instance_type, desired_vcpu, desired_memory_mb, desired_disk_gb
FROM nodes
WHERE organization_id = @organization_id AND id = ANY(@ids::uuid[])
ORDER BY id
FOR NO KEY UPDATE;

-- name: MoveAndRecord :one
-- One drain move after the fit check, with its nodes locked: unless a
-- cancel was asked for (then nothing moves and the move stays pending,
-- for the drain's end to mark cancelled), the instance moves (its row
-- locked by the update) if it is still on the drained node, and the move
-- records where it went or that it was skipped. The answer says whether it
-- moved and whether a cancel was asked for, before or since.
WITH flag AS (
    SELECT migrations.cancel_requested AS c FROM migrations
    WHERE migrations.organization_id = @organization_id AND migrations.id = @migration_id
), moved AS (
    UPDATE instances SET node_id = @to_node_id
    WHERE instances.organization_id = @organization_id AND instances.id = @instance_id AND instances.node_id = @from_node_id
      AND NOT coalesce((SELECT c FROM flag), true)
    RETURNING id
), mv AS (
    UPDATE migration_moves SET
        status = CASE WHEN EXISTS (SELECT 1 FROM moved) THEN 'moved' WHEN coalesce((SELECT c FROM flag), true) THEN 'pending' ELSE 'skipped' END,
        to_node_id = CASE WHEN EXISTS (SELECT 1 FROM moved) THEN @to_node_id::uuid END,
        to_node_name = CASE WHEN EXISTS (SELECT 1 FROM moved) THEN @to_node_name::text ELSE '' END,
        reason = CASE WHEN EXISTS (SELECT 1 FROM moved) OR coalesce((SELECT c FROM flag), true) THEN ''
                      ELSE 'the instance was deleted or moved to another node meanwhile' END,
        finished_at = CASE WHEN EXISTS (SELECT 1 FROM moved) OR NOT coalesce((SELECT c FROM flag), true) THEN now() END
    WHERE migration_moves.migration_id = @migration_id AND migration_moves.position = @position
)
UPDATE migrations SET updated_at = now()
WHERE migrations.organization_id = @organization_id AND migrations.id = @migration_id
RETURNING cancel_requested, (SELECT count(*) FROM moved)::integer AS moved;

-- name: DeleteOldMigrations :execrows
-- Maintenance (every organization): finished drains and migrations older
-- than @days days, with their moves.
DELETE FROM migrations
WHERE status NOT IN ('queued', 'running') AND finished_at < now() - make_interval(days => @days::int);
