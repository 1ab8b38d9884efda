-- name: ListNodeCapacities :many
-- One row per node with its aggregated reservations (kept by the triggers
-- on instances): suggest-fit never reads instance rows. labels_match says
-- whether the node carries every requested label, so labels are not decoded
-- per node.
SELECT id, name, provider, region, status, vcpu, memory_mb, disk_gb,
       reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count,
       (labels @> @labels::jsonb)::boolean AS labels_match
FROM nodes
WHERE organization_id = @organization_id
ORDER BY name, id;
