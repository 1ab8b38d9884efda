-- name: CountUsers :one
SELECT count(*) FROM users;

-- name: CreateUser :one
INSERT INTO users (email, password_hash, is_admin)
VALUES (@email, @password_hash, @is_admin)
RETURNING *;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = @email;

-- name: GetUserByID :one
SELECT * FROM users WHERE id = @id;

-- name: ListUsers :many
SELECT * FROM users ORDER BY created_at, id LIMIT @lim OFFSET @off;

-- name: DeleteUser :execrows
DELETE FROM users WHERE id = @id;

-- name: UpdateUserPassword :one
-- Bumping session_version refuses every access token issued before.
UPDATE users
SET password_hash = @password_hash, session_version = session_version + 1, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: SetUserMFASecret :exec
UPDATE users SET mfa_secret = @mfa_secret, updated_at = now()
WHERE id = @id AND NOT mfa_enabled;

-- name: EnableUserMFA :execrows
UPDATE users SET mfa_enabled = true, mfa_last_step = @step, updated_at = now()
WHERE id = @id AND NOT mfa_enabled AND mfa_secret IS NOT NULL;

-- name: DisableUserMFA :exec
UPDATE users SET mfa_enabled = false, mfa_secret = NULL, mfa_last_step = 0, updated_at = now()
WHERE id = @id;

-- name: AdvanceUserMFAStep :execrows
-- Accepts a TOTP time step once: a replayed code (same or older step) updates nothing.
UPDATE users SET mfa_last_step = @step
WHERE id = @id AND mfa_last_step < @step;

-- name: GetPrincipalForUser :one
-- The user with their membership in the requested organization, or in their
-- first organization when org_id is NULL. Without such a membership the
-- organization id is the nil UUID and the role is empty.
SELECT u.id, u.email, u.is_admin, u.session_version,
       coalesce(m.organization_id, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS organization_id,
       coalesce(m.role, '')::text AS role, coalesce(m.grants, '{}')::text[] AS grants
FROM users u
LEFT JOIN LATERAL (
    SELECT ms.organization_id, ms.role, ms.grants
    FROM memberships ms
    WHERE ms.user_id = u.id
      AND (sqlc.narg(org_id)::uuid IS NULL OR ms.organization_id = sqlc.narg(org_id)::uuid)
    ORDER BY ms.created_at, ms.organization_id
    LIMIT 1
) m ON true
WHERE u.id = @user_id;

-- name: LockAccountCreation :exec
-- Serializes bootstrap so two concurrent requests cannot both create "the first" admin.
SELECT pg_advisory_xact_lock(7365726674);
