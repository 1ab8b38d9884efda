-- name: InsertNodeOnce :one
-- Registers the node of a provision request; a retried apply finds it
-- there, and a later apply (a resize) gives it its new size: the resize
-- is no longer pending.
INSERT INTO nodes (organization_id, provision_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, ipv4, ipv6, server_id, labels)
VALUES (@organization_id, @provision_id, @name, @provider, @region, @instance_type, @vcpu, @memory_mb, @disk_gb, @ipv4, @ipv6, @server_id, @labels)
ON CONFLICT (provision_id) DO UPDATE SET ipv4 = excluded.ipv4, ipv6 = excluded.ipv6, server_id = excluded.server_id,
    instance_type = excluded.instance_type, vcpu = excluded.vcpu, memory_mb = excluded.memory_mb, disk_gb = excluded.disk_gb,
    desired_instance_type = NULL, desired_vcpu = NULL, desired_memory_mb = NULL, desired_disk_gb = NULL, updated_at = now()
RETURNING *;

-- name: GetNode :one
SELECT * FROM nodes WHERE organization_id = @organization_id AND id = @id;

-- name: ListNodes :many
-- The status filter matches what the API shows: "stopped" while powered off.
SELECT * FROM nodes
WHERE organization_id = @organization_id
  AND (sqlc.narg(status)::text IS NULL OR (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END) = sqlc.narg(status))
  AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider))
ORDER BY created_at, id
LIMIT @lim OFFSET @off;

-- name: CountNodes :one
SELECT count(*) FROM nodes
WHERE organization_id = @organization_id
  AND (sqlc.narg(status)::text IS NULL OR (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END) = sqlc.narg(status))
  AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider));

-- name: UpdateNode :one
UPDATE nodes SET name = @name, status = @status, labels = @labels, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: DeleteNode :execrows
DELETE FROM nodes WHERE organization_id = @organization_id AND id = @id;

-- name: DeleteNodeOfProvision :exec
DELETE FROM nodes WHERE organization_id = @organization_id AND provision_id = @provision_id;

-- name: NodesByIDs :many
-- The nodes a search found or extends with (search package), in no order.
SELECT * FROM nodes
WHERE organization_id = @organization_id AND id = ANY(@ids::uuid[]);
