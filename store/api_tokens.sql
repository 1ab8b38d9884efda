-- name: CreateAPIToken :one
INSERT INTO api_tokens (organization_id, user_id, name, display_prefix, token_hash, scopes, expires_at)
VALUES (@organization_id, @user_id, @name, @display_prefix, @token_hash, @scopes, @expires_at)
RETURNING *;

-- name: ListAPITokens :many
SELECT * FROM api_tokens
WHERE organization_id = @organization_id AND user_id = @user_id
ORDER BY created_at DESC, id
LIMIT @lim OFFSET @off;

-- name: CountAPITokens :one
SELECT count(*) FROM api_tokens WHERE organization_id = @organization_id AND user_id = @user_id;

-- name: DeleteAPIToken :execrows
DELETE FROM api_tokens
WHERE organization_id = @organization_id AND user_id = @user_id AND id = @id;

-- name: AuthenticateAPIToken :one
-- One round trip per request: the live token, its user and the user's current
-- membership (so scopes are narrowed to today's permissions), and a
-- last_used_at touch at most once a minute.
WITH tok AS (
    SELECT t.* FROM api_tokens t
    WHERE t.token_hash = @token_hash AND t.expires_at > now()
), touch AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = (SELECT tok.id FROM tok)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT tok.id, tok.organization_id, tok.scopes, u.id AS user_id, u.email, u.is_admin, m.role, m.grants
FROM tok
JOIN users u ON u.id = tok.user_id
JOIN memberships m ON m.organization_id = tok.organization_id AND m.user_id = tok.user_id;
