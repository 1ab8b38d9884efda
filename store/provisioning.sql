-- name: CreateProvisionRequest :one
INSERT INTO provision_requests (organization_id, created_by, provider, region, instance_type, name, image, ssh_keys, labels, status, idempotency_key, request_hash, credential_id)
VALUES (@organization_id, @created_by, @provider, @region, @instance_type, @name, @image, @ssh_keys, @labels, 'pending', @idempotency_key, @request_hash, @credential_id)
RETURNING *;

-- name: GetProvisionRequest :one
SELECT * FROM provision_requests WHERE organization_id = @organization_id AND id = @id;

-- name: GetProvisionRequestForUpdate :one
SELECT * FROM provision_requests WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: GetProvisionRequestByIdempotencyKey :one
SELECT * FROM provision_requests WHERE organization_id = @organization_id AND idempotency_key = @idempotency_key;

-- name: ListProvisionRequests :many
SELECT * FROM provision_requests
WHERE organization_id = @organization_id
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider))
ORDER BY created_at DESC, id
LIMIT @lim OFFSET @off;

-- name: CountProvisionRequests :one
SELECT count(*) FROM provision_requests
WHERE organization_id = @organization_id
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider));

-- name: SetProvisionStatus :exec
UPDATE provision_requests SET status = @status, error = @error, updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: SetProvisionPlanned :exec
UPDATE provision_requests
SET status = 'planned', error = '', plan_summary = @plan_summary, plan_file = @plan_file, updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: SetProvisionApplied :exec
UPDATE provision_requests
SET status = 'applied', error = '', node_id = @node_id, plan_file = NULL, updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: SetProvisionDestroyed :exec
UPDATE provision_requests
SET status = 'destroyed', error = '', node_id = NULL, plan_file = NULL, updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: AppendProvisionLog :exec
INSERT INTO provision_logs (provision_id, operation, chunk) VALUES (@provision_id, @operation, @chunk);

-- name: ListProvisionLogs :many
-- The organization check joins the request, so a log is never read across tenants.
SELECT l.id, l.operation, l.chunk, l.created_at
FROM provision_logs l
JOIN provision_requests p ON p.id = l.provision_id
WHERE p.organization_id = @organization_id AND l.provision_id = @provision_id AND l.id > @after_id
ORDER BY l.id
LIMIT 1000;

-- name: ProvisionRequestsByIDs :many
-- The requests a search found (search package), in no order.
SELECT * FROM provision_requests
WHERE organization_id = @organization_id AND id = ANY(@ids::uuid[]);
