-- name: GetNodeSetVersion :one
-- The organization's node-set version (0 before its first node).
SELECT coalesce((SELECT version FROM node_set_versions WHERE organization_id = @organization_id), 0)::bigint;

-- name: ListNodeCapacitiesWithLabels :many
-- Every node of the organization with its aggregated reservations and its
-- labels, for the in-memory suggest-fit cache (a powered-off node reads as
-- status "stopped"; desired_*: the size of a pending resize).
SELECT id, name, provider, region, (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END)::text AS status, vcpu, memory_mb, disk_gb,
       reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count, labels,
       desired_vcpu, desired_memory_mb, desired_disk_gb
FROM nodes
WHERE organization_id = @organization_id
ORDER BY name, id;
