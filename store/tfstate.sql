-- name: EnsureProvisionTFState :exec
-- Creates a provision request's state on first use; nothing when the
-- request is another organization's or gone.
INSERT INTO tf_states (organization_id, provision_id, created_at)
SELECT p.organization_id, p.id, @now
FROM provision_requests p
WHERE p.organization_id = @organization_id AND p.id = @provision_id
ON CONFLICT (provision_id) DO NOTHING;

-- name: GetProvisionTFState :one
SELECT * FROM tf_states WHERE organization_id = @organization_id AND provision_id = @provision_id;

-- name: TFStateProvisionExists :one
SELECT EXISTS (SELECT 1 FROM provision_requests WHERE organization_id = @organization_id AND id = @provision_id);

-- name: EnsureCustomTFState :exec
INSERT INTO tf_states (organization_id, name, created_at)
VALUES (@organization_id, @name, @now)
ON CONFLICT (organization_id, name) DO NOTHING;

-- name: GetCustomTFState :one
SELECT * FROM tf_states WHERE organization_id = @organization_id AND name = @name;

-- name: LockTFState :one
-- A state's row, locked until the transaction ends, checking its
-- organization: the queries after it in the same transaction (its versions,
-- its lock) name the state alone.
SELECT * FROM tf_states WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: LatestTFStateVersion :one
SELECT v.* FROM tf_state_versions v
JOIN tf_states s ON s.id = v.state_id
WHERE s.organization_id = @organization_id AND v.state_id = @state_id
ORDER BY v.version DESC
LIMIT 1;

-- name: GetTFStateVersion :one
SELECT v.* FROM tf_state_versions v
JOIN tf_states s ON s.id = v.state_id
WHERE s.organization_id = @organization_id AND v.state_id = @state_id AND v.version = @version;

-- name: ListTFStateVersions :many
-- Newest first, without the sealed state.
SELECT v.version, v.serial, v.lineage, v.checksum, v.run_id, v.size, v.created_at
FROM tf_state_versions v
JOIN tf_states s ON s.id = v.state_id
WHERE s.organization_id = @organization_id AND v.state_id = @state_id
ORDER BY v.version DESC;

-- name: InsertTFStateVersion :exec
INSERT INTO tf_state_versions (state_id, version, serial, lineage, checksum, run_id, size, sealed, created_at)
VALUES (@state_id, @version, @serial, @lineage, @checksum, @run_id, @size, @sealed, @now);

-- name: PruneTFStateVersions :execrows
-- Keeps the versions after @keep_after (the newest ones).
DELETE FROM tf_state_versions WHERE state_id = @state_id AND version <= @keep_after;

-- name: CountTFStateVersions :one
SELECT count(*) FROM tf_state_versions WHERE state_id = @state_id;

-- name: GetTFStateLock :one
SELECT * FROM tf_state_locks WHERE state_id = @state_id;

-- name: PutTFStateLock :exec
INSERT INTO tf_state_locks (state_id, lock_id, info, run_id, worker, created_at, expires_at)
VALUES (@state_id, @lock_id, @info, @run_id, @worker, @now, @expires_at)
ON CONFLICT (state_id) DO UPDATE SET
    lock_id = EXCLUDED.lock_id, info = EXCLUDED.info, run_id = EXCLUDED.run_id, worker = EXCLUDED.worker,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at;

-- name: DeleteTFStateLock :execrows
DELETE FROM tf_state_locks WHERE state_id = @state_id;

-- name: RenewRunTFStateLocks :execrows
UPDATE tf_state_locks SET expires_at = @expires_at WHERE run_id = @run_id::uuid;

-- name: DeleteRunTFStateLocks :execrows
DELETE FROM tf_state_locks WHERE run_id = @run_id::uuid;

-- name: CreateTFRunCredential :exec
INSERT INTO tf_run_credentials (state_id, run_id, worker, secret_hash, expires_at, created_at)
VALUES (@state_id, @run_id, @worker, @secret_hash, @expires_at, @now);

-- name: DeleteExpiredTFRunCredentials :execrows
DELETE FROM tf_run_credentials WHERE state_id = @state_id AND expires_at <= @now;

-- name: DeleteRunTFCredentials :execrows
DELETE FROM tf_run_credentials WHERE run_id = @run_id;

-- name: AuthenticateTFRunCredential :one
SELECT c.state_id, c.run_id, c.worker, s.organization_id, s.provision_id, s.name
FROM tf_run_credentials c
JOIN tf_states s ON s.id = c.state_id
WHERE c.secret_hash = @secret_hash AND c.run_id = @run_id AND c.expires_at > @now;

-- name: DeleteProvisionRunTFStateLocks :execrows
-- Releases a provision request's state lock when a run (not a user) holds it.
DELETE FROM tf_state_locks l
USING tf_states s
WHERE l.state_id = s.id AND s.organization_id = @organization_id AND s.provision_id = @provision_id
  AND l.run_id IS NOT NULL;
