-- Device authorizations (RFC 8628, `shardform login`). A row belongs to no
-- organization until a session approves it, so the lookups before approval
-- are by the device code's hash (as AuthenticateAPIToken is by the token's)
-- or by the user code; once approved, the queries name the organization.

-- name: CreateDeviceAuthorization :one
-- No row when the user code is taken (the caller draws another).
INSERT INTO device_authorizations (device_code_hash, user_code, client_name, scopes, interval_seconds, expires_at, created_at)
VALUES (@device_code_hash, @user_code, @client_name, @scopes, @interval_seconds, @expires_at, @created_at)
ON CONFLICT (user_code) DO NOTHING
RETURNING *;

-- name: DeleteExpiredDeviceAuthorizations :execrows
DELETE FROM device_authorizations WHERE expires_at < @before;

-- name: LockDeviceAuthorizationByDeviceCode :one
SELECT * FROM device_authorizations WHERE device_code_hash = @device_code_hash FOR UPDATE;

-- name: GetDeviceAuthorizationByUserCode :one
SELECT * FROM device_authorizations WHERE user_code = @user_code;

-- name: LockDeviceAuthorizationByUserCode :one
SELECT * FROM device_authorizations WHERE user_code = @user_code FOR UPDATE;

-- name: RecordDevicePoll :exec
UPDATE device_authorizations SET last_polled_at = @polled_at, interval_seconds = @interval_seconds
WHERE id = @id;

-- name: ApproveDeviceAuthorization :execrows
UPDATE device_authorizations
SET organization_id = @organization_id, approved_by = @approved_by, approved_at = @approved_at
WHERE id = @id AND approved_at IS NULL AND denied_at IS NULL;

-- name: DenyDeviceAuthorization :execrows
UPDATE device_authorizations SET denied_by = @denied_by, denied_at = @denied_at
WHERE id = @id AND approved_at IS NULL AND denied_at IS NULL;

-- name: MarkDeviceDelivered :execrows
-- The device received its token: the row answers invalid_grant from now on.
UPDATE device_authorizations SET delivered_at = @delivered_at, api_token_id = @api_token_id
WHERE id = @id AND organization_id = @organization_id AND delivered_at IS NULL;
