-- name: SaveLivePricing :exec
-- A successful read: replaces the stored types and clears the error.
INSERT INTO live_pricing (organization_id, provider, types, type_count, read_at, attempted_at, error)
VALUES (@organization_id, @provider, @types, @type_count, @read_at, @read_at, '')
ON CONFLICT (organization_id, provider) DO UPDATE SET
    types = excluded.types, type_count = excluded.type_count, read_at = excluded.read_at,
    attempted_at = excluded.attempted_at, error = '';

-- name: RecordLivePricingError :exec
-- A failed read: the previous good types (if any) stay.
INSERT INTO live_pricing (organization_id, provider, attempted_at, error)
VALUES (@organization_id, @provider, @attempted_at, @error)
ON CONFLICT (organization_id, provider) DO UPDATE SET
    attempted_at = excluded.attempted_at, error = excluded.error;

-- name: ListLivePricingStatus :many
-- What each provider's refresh last did, without the types (read on every
-- planner request to find out whether the cached catalog is current).
SELECT provider, type_count, read_at, attempted_at, error
FROM live_pricing
WHERE organization_id = @organization_id
ORDER BY provider;

-- name: ListLivePricing :many
SELECT provider, types, read_at
FROM live_pricing
WHERE organization_id = @organization_id AND read_at IS NOT NULL
ORDER BY provider;

-- name: ListOrganizationsWithDefaultCredential :many
-- The hourly pricing refresh's fan-out: every organization with a default
-- credential for provider. Deliberately across organizations (a system job,
-- like cleanup): it returns ids only, and each per-organization job then
-- reads that organization's data alone.
SELECT organization_id FROM credentials
WHERE provider = @provider AND is_default
ORDER BY organization_id;

-- name: ListFleetNodes :many
-- Every node of the organization with its size (the fleet report's input;
-- a powered-off node reads as status "stopped"; desired_*: the size of a
-- pending resize).
SELECT id, name, provider, region, instance_type, (CASE WHEN power_state = 'stopped' THEN 'stopped' ELSE status END)::text AS status, vcpu, memory_mb, disk_gb,
       desired_vcpu, desired_memory_mb, desired_disk_gb
FROM nodes
WHERE organization_id = @organization_id
ORDER BY name, id;

-- name: ListFleetInstances :many
-- Every instance of the organization with its reservation, grouped by node.
SELECT id, node_id, name, cpu_millis, memory_mb, disk_gb
FROM instances
WHERE organization_id = @organization_id
ORDER BY node_id, id;

-- name: SaveFleetReport :exec
INSERT INTO fleet_reports (organization_id, job_id, generated_at, report)
VALUES (@organization_id, @job_id, @generated_at, @report)
ON CONFLICT (organization_id) DO UPDATE SET
    job_id = excluded.job_id, generated_at = excluded.generated_at, report = excluded.report;

-- name: GetFleetReport :one
SELECT job_id, generated_at, report FROM fleet_reports WHERE organization_id = @organization_id;
