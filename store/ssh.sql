-- name: SSHOrganizationExists :one
SELECT EXISTS (SELECT 1 FROM organizations WHERE id = @organization_id);

-- name: EnsureSSHSettings :exec
INSERT INTO ssh_settings (organization_id) VALUES (@organization_id)
ON CONFLICT (organization_id) DO NOTHING;

-- name: LockSSHSettings :one
-- Serializes CA key creation, rotation and retirement per organization.
SELECT krl_version FROM ssh_settings WHERE organization_id = @organization_id FOR UPDATE;

-- name: GetSSHSettings :one
SELECT * FROM ssh_settings WHERE organization_id = @organization_id;

-- name: SetSSHPolicy :exec
INSERT INTO ssh_settings (organization_id, policy) VALUES (@organization_id, @policy)
ON CONFLICT (organization_id) DO UPDATE SET policy = excluded.policy, updated_at = now();

-- name: BumpSSHKRLVersion :one
INSERT INTO ssh_settings (organization_id, krl_version) VALUES (@organization_id, 1)
ON CONFLICT (organization_id) DO UPDATE SET krl_version = ssh_settings.krl_version + 1, updated_at = now()
RETURNING krl_version;

-- name: InsertSSHCAKey :one
INSERT INTO ssh_ca_keys (id, organization_id, algorithm, public_key, fingerprint, sealed_private_key, created_at)
VALUES (@id, @organization_id, @algorithm, @public_key, @fingerprint, @sealed_private_key, clock_timestamp())
RETURNING *;

-- name: GetSigningSSHCAKey :one
-- The organization's signing key: its newest active key.
SELECT * FROM ssh_ca_keys
WHERE organization_id = @organization_id AND status = 'active'
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: GetSSHCAKey :one
SELECT * FROM ssh_ca_keys WHERE organization_id = @organization_id AND id = @id;

-- name: ListSSHCAKeys :many
SELECT * FROM ssh_ca_keys WHERE organization_id = @organization_id
ORDER BY created_at DESC, id DESC;

-- name: ListTrustedSSHCAKeys :many
-- The keys a node should trust, signing key first: the signing key, and every
-- other active key with a certificate that has not expired yet.
WITH signing AS (
    SELECT k.id FROM ssh_ca_keys k
    WHERE k.organization_id = @organization_id AND k.status = 'active'
    ORDER BY k.created_at DESC, k.id DESC
    LIMIT 1
)
SELECT k.* FROM ssh_ca_keys k
WHERE k.organization_id = @organization_id AND k.status = 'active'
  AND (k.id IN (SELECT id FROM signing)
       OR EXISTS (SELECT 1 FROM ssh_certificates c
                  WHERE c.organization_id = k.organization_id AND c.ca_key_id = k.id AND c.valid_before > @now))
ORDER BY k.created_at DESC, k.id DESC;

-- name: RetireSSHCAKey :one
UPDATE ssh_ca_keys SET status = 'retired', retired_at = now()
WHERE organization_id = @organization_id AND id = @id AND status = 'active'
RETURNING *;

-- name: AllocateSSHSerial :one
-- Hands out the key's next serial; run on its own (not in the signing
-- transaction) so a number is never reused.
UPDATE ssh_ca_keys SET next_serial = next_serial + 1
WHERE organization_id = @organization_id AND id = @id AND status = 'active'
RETURNING (next_serial - 1)::bigint AS serial;

-- name: InsertSSHCertificate :one
INSERT INTO ssh_certificates (organization_id, ca_key_id, user_id, node_id, serial, key_id, principals, key_type,
    key_fingerprint, extensions, source_address, valid_after, valid_before, certificate, job_id)
VALUES (@organization_id, @ca_key_id, @user_id, @node_id, @serial, @key_id, @principals, @key_type,
    @key_fingerprint, @extensions, @source_address, @valid_after, @valid_before, @certificate, @job_id)
RETURNING *;

-- name: GetSSHCertificateByJob :one
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.job_id = @job_id;

-- name: GetSSHCertificate :one
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.id = @id;

-- name: ListSSHCertificates :many
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id
  AND (sqlc.narg(user_id)::uuid IS NULL OR c.user_id = sqlc.narg(user_id))
  AND (sqlc.narg(node_id)::uuid IS NULL OR c.node_id = sqlc.narg(node_id))
  AND (sqlc.narg(state)::text IS NULL
       OR (sqlc.narg(state) = 'revoked' AND c.revoked_at IS NOT NULL)
       OR (sqlc.narg(state) = 'expired' AND c.revoked_at IS NULL AND c.valid_before <= @now)
       OR (sqlc.narg(state) = 'active' AND c.revoked_at IS NULL AND c.valid_before > @now))
ORDER BY c.created_at DESC, c.id
LIMIT @lim OFFSET @off;

-- name: CountSSHCertificates :one
SELECT count(*) FROM ssh_certificates c
WHERE c.organization_id = @organization_id
  AND (sqlc.narg(user_id)::uuid IS NULL OR c.user_id = sqlc.narg(user_id))
  AND (sqlc.narg(node_id)::uuid IS NULL OR c.node_id = sqlc.narg(node_id))
  AND (sqlc.narg(state)::text IS NULL
       OR (sqlc.narg(state) = 'revoked' AND c.revoked_at IS NOT NULL)
       OR (sqlc.narg(state) = 'expired' AND c.revoked_at IS NULL AND c.valid_before <= @now)
       OR (sqlc.narg(state) = 'active' AND c.revoked_at IS NULL AND c.valid_before > @now));

-- name: RevokeSSHCertificate :one
UPDATE ssh_certificates SET revoked_at = now()
WHERE organization_id = @organization_id AND id = @id AND revoked_at IS NULL
RETURNING id;

-- name: ListRevokedSSHSerials :many
-- Revoked certificates that have not expired, of the keys still trusted.
SELECT k.public_key, c.serial FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.revoked_at IS NOT NULL
  AND c.valid_before > @now AND k.status = 'active'
ORDER BY k.created_at DESC, k.id, c.serial;

-- name: SSHNodeExists :one
SELECT EXISTS (SELECT 1 FROM nodes WHERE organization_id = @organization_id AND id = @id);
