-- name: InsertAuditLog :exec
INSERT INTO audit_logs (organization_id, user_id, api_token_id, action, target, status, request_id, ip)
VALUES (@organization_id, @user_id, @api_token_id, @action, @target, @status, @request_id, @ip);

-- name: ListAuditLogs :many
SELECT * FROM audit_logs
WHERE organization_id = @organization_id
ORDER BY created_at DESC, id DESC
LIMIT @lim OFFSET @off;

-- name: CountAuditLogs :one
SELECT count(*) FROM audit_logs WHERE organization_id = @organization_id;

-- name: AuditLogsByIDs :many
-- The entries a search found (search package), in no order.
SELECT * FROM audit_logs
WHERE organization_id = @organization_id AND id = ANY(@ids::bigint[]);
