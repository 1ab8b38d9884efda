-- name: CreateCredential :one
INSERT INTO credentials (id, organization_id, name, provider, secret, hint, is_default, created_by)
VALUES (@id, @organization_id, @name, @provider, @secret, @hint,
        NOT EXISTS (SELECT 1 FROM credentials c WHERE c.organization_id = @organization_id AND c.provider = @provider AND c.is_default),
        @created_by)
RETURNING *;

-- name: GetCredential :one
SELECT * FROM credentials WHERE organization_id = @organization_id AND id = @id;

-- name: GetDefaultCredential :one
SELECT * FROM credentials WHERE organization_id = @organization_id AND provider = @provider AND is_default;

-- name: ListCredentials :many
SELECT * FROM credentials
WHERE organization_id = @organization_id AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider))
ORDER BY created_at, id
LIMIT @lim OFFSET @off;

-- name: CountCredentials :one
SELECT count(*) FROM credentials
WHERE organization_id = @organization_id AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider));

-- name: UpdateCredential :one
-- A new secret clears the last verification; a rename keeps it.
UPDATE credentials SET name = @name, secret = @secret, hint = @hint,
    verified_at = CASE WHEN @new_secret::boolean THEN NULL ELSE verified_at END,
    verify_error = CASE WHEN @new_secret::boolean THEN '' ELSE verify_error END,
    updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: DeleteCredential :execrows
DELETE FROM credentials WHERE organization_id = @organization_id AND id = @id;

-- name: ClearDefaultCredential :exec
UPDATE credentials SET is_default = false, updated_at = now()
WHERE organization_id = @organization_id AND provider = @provider AND is_default;

-- name: SetDefaultCredential :one
UPDATE credentials SET is_default = true, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: RecordCredentialVerification :one
UPDATE credentials SET verified_at = now(), verify_error = @verify_error, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: LockCredential :one
SELECT id FROM credentials WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: LiveProvisionsUsingCredential :many
-- Requests that still need the credential (to plan, apply or destroy).
SELECT id, name FROM provision_requests
WHERE credential_id = @credential_id AND status <> 'destroyed'
ORDER BY created_at, id
LIMIT 5;

-- name: CredentialsByIDs :many
-- The credentials a search found (search package), in no order.
SELECT * FROM credentials
WHERE organization_id = @organization_id AND id = ANY(@ids::uuid[]);
