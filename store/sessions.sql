-- name: CreateRefreshToken :one
INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at)
VALUES (@family_id, @user_id, @token_hash, @expires_at)
RETURNING *;

-- name: UseRefreshToken :one
-- Marks a live refresh token used and returns it; a used, revoked or expired
-- token matches nothing.
UPDATE refresh_tokens SET used_at = now()
WHERE token_hash = @token_hash AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
RETURNING *;

-- name: GetRefreshToken :one
SELECT * FROM refresh_tokens WHERE token_hash = @token_hash;

-- name: RefreshTokenReusable :one
-- Whether a used refresh token was used less than @seconds ago (by the
-- database's clock, which set used_at) and its login is live: its
-- reuse then is a concurrent request's, not a thief's.
SELECT (used_at IS NOT NULL AND used_at > now() - make_interval(secs => @seconds::float8)
	AND revoked_at IS NULL AND expires_at > now())::bool AS reusable
FROM refresh_tokens WHERE token_hash = @token_hash;

-- name: RevokeRefreshFamily :exec
UPDATE refresh_tokens SET revoked_at = now()
WHERE family_id = @family_id AND revoked_at IS NULL;

-- name: RevokeUserRefreshTokens :exec
UPDATE refresh_tokens SET revoked_at = now()
WHERE user_id = @user_id AND revoked_at IS NULL;

-- name: DeleteExpiredRefreshTokens :execrows
DELETE FROM refresh_tokens WHERE expires_at <= now() - interval '1 day';

-- name: CreateMFAChallenge :one
INSERT INTO mfa_challenges (user_id, token_hash, expires_at)
VALUES (@user_id, @token_hash, @expires_at)
RETURNING *;

-- name: GetMFAChallenge :one
SELECT * FROM mfa_challenges
WHERE token_hash = @token_hash AND consumed_at IS NULL AND expires_at > now();

-- name: ConsumeMFAChallenge :execrows
UPDATE mfa_challenges SET consumed_at = now()
WHERE id = @id AND consumed_at IS NULL;

-- name: DeleteExpiredMFAChallenges :execrows
DELETE FROM mfa_challenges WHERE expires_at <= now();
