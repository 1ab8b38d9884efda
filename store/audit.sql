-- name: InsertAuditLog :exec
INSERT INTO audit_logs (organization_id, user_id, api_token_id, action, target, status, request_id, ip)
VALUES (@organization_id, @user_id, @api_token_id, @action, @target, @status, @request_id, @ip);

-- name: ListAuditLogs :many
SELECT * FROM audit_logs
WHERE organization_id = @organization_id
  AND (sqlc.narg(action)::text IS NULL OR strpos(action, sqlc.narg(action)) > 0)
  AND (sqlc.narg(target)::text IS NULL OR target = sqlc.narg(target))
  AND (sqlc.narg(user_id)::uuid IS NULL OR user_id = sqlc.narg(user_id))
ORDER BY created_at DESC, id DESC
LIMIT @lim OFFSET @off;

-- name: CountAuditLogs :one
SELECT count(*) FROM audit_logs
WHERE organization_id = @organization_id
  AND (sqlc.narg(action)::text IS NULL OR strpos(action, sqlc.narg(action)) > 0)
  AND (sqlc.narg(target)::text IS NULL OR target = sqlc.narg(target))
  AND (sqlc.narg(user_id)::uuid IS NULL OR user_id = sqlc.narg(user_id));

-- name: AuditLogsByIDs :many
-- The entries a search found (search package), in no order.
SELECT * FROM audit_logs
WHERE organization_id = @organization_id AND id = ANY(@ids::bigint[]);
