-- name: LockPlacementNode :one
-- The node an instance is placed on, locked until the transaction ends (the
-- lock the reservation triggers take), with its size and aggregated
-- reservations: two placements on one node are serialized, so the second
-- sees the reservation of the first.
-- A node that is powered off reads as status "stopped". desired_*: the size
-- of a pending resize (placement counts the smaller of both sizes).
SELECT id, name, (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END)::text AS status, vcpu, memory_mb, disk_gb,
       reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count,
       desired_instance_type, desired_vcpu, desired_memory_mb, desired_disk_gb
FROM nodes
WHERE organization_id = @organization_id AND id = @id
FOR NO KEY UPDATE;

-- name: InsertInstance :one
INSERT INTO instances (organization_id, node_id, name, template, players, cpu_millis, memory_mb, disk_gb)
VALUES (@organization_id, @node_id, @name, @template, @players, @cpu_millis, @memory_mb, @disk_gb)
RETURNING id, created_at;

-- name: GetInstance :one
SELECT i.id, i.node_id, n.name AS node_name, i.name, i.template, i.players,
       i.cpu_millis, i.memory_mb, i.disk_gb, i.created_at
FROM instances i JOIN nodes n ON n.id = i.node_id
WHERE i.organization_id = @organization_id AND i.id = @id;

-- name: LockInstance :one
-- The instance a move changes, locked before its nodes (the order a delete
-- takes them in: the row, then the trigger's node locks).
SELECT id, node_id, name, cpu_millis, memory_mb, disk_gb
FROM instances
WHERE organization_id = @organization_id AND id = @id
FOR UPDATE;

-- name: ListInstances :many
SELECT i.id, i.node_id, n.name AS node_name, i.name, i.template, i.players,
       i.cpu_millis, i.memory_mb, i.disk_gb, i.created_at
FROM instances i JOIN nodes n ON n.id = i.node_id
WHERE i.organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR i.node_id = sqlc.narg(node_id))
  AND (sqlc.narg(template)::text IS NULL OR i.template = sqlc.narg(template))
ORDER BY i.created_at, i.id
LIMIT @lim OFFSET @off;

-- name: CountInstances :one
SELECT count(*) FROM instances
WHERE organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR node_id = sqlc.narg(node_id))
  AND (sqlc.narg(template)::text IS NULL OR template = sqlc.narg(template));

-- name: MoveInstance :exec
UPDATE instances SET node_id = @node_id
WHERE organization_id = @organization_id AND id = @id;

-- name: DeleteInstance :execrows
DELETE FROM instances WHERE organization_id = @organization_id AND id = @id;

-- name: InstancesByIDs :many
-- The instances a search found (search package), in no order.
SELECT i.id, i.node_id, n.name AS node_name, i.name, i.template, i.players,
       i.cpu_millis, i.memory_mb, i.disk_gb, i.created_at
FROM instances i JOIN nodes n ON n.id = i.node_id
WHERE i.organization_id = @organization_id AND i.id = ANY(@ids::uuid[]);

-- name: InstancesOfNodes :many
-- The instances on the nodes, for search's instances extend.
SELECT i.id, i.node_id, n.name AS node_name, i.name, i.template, i.players,
       i.cpu_millis, i.memory_mb, i.disk_gb, i.created_at
FROM instances i JOIN nodes n ON n.id = i.node_id
WHERE i.organization_id = @organization_id AND i.node_id = ANY(@node_ids::uuid[])
ORDER BY i.created_at, i.id;
