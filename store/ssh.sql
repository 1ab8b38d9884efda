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
-- Every change bumps policy_version (0 is the default policy, never set).
INSERT INTO ssh_settings (organization_id, policy, policy_version) VALUES (@organization_id, @policy, 1)
ON CONFLICT (organization_id) DO UPDATE SET policy = excluded.policy,
    policy_version = ssh_settings.policy_version + 1, updated_at = now();

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

-- name: NextSSHSerials :many
-- Hands out n user certificate serials from the ssh_serials sequence: no
-- row lock, and a number is never handed out twice (see 00009_ssh_serials).
SELECT nextval('ssh_serials')::bigint AS serial FROM generate_series(1, @n::int);

-- name: RecordSSHCertificate :one
-- Records a signed certificate, but only if its CA key is still the
-- organization's signing key and the policy it was checked against
-- (policy_version) is still the current one; no row means: reload both and
-- sign again.
INSERT INTO ssh_certificates (organization_id, ca_key_id, user_id, node_id, serial, key_id, principals, key_type,
    key_fingerprint, extensions, source_address, valid_after, valid_before, certificate, job_id)
SELECT @organization_id::uuid, @ca_key_id::uuid, sqlc.narg(user_id)::uuid, sqlc.narg(node_id)::uuid, @serial::bigint,
    @key_id::text, @principals::text[], @key_type::text, @key_fingerprint::text, @extensions::text[],
    @source_address::text, @valid_after::timestamptz, @valid_before::timestamptz, @certificate::text,
    sqlc.narg(job_id)::bigint
WHERE @ca_key_id::uuid = (
        SELECT k.id FROM ssh_ca_keys k
        WHERE k.organization_id = @organization_id::uuid AND k.status = 'active'
        ORDER BY k.created_at DESC, k.id DESC
        LIMIT 1)
  AND @policy_version::bigint = COALESCE(
        (SELECT s.policy_version FROM ssh_settings s WHERE s.organization_id = @organization_id::uuid), 0)
RETURNING id;

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

-- name: NotifySSH :exec
-- Tells the other processes: a waiting API request that its job ended
-- (shardform_ssh_signed), or that an organization's CA keys or policy
-- changed (shardform_ssh_ca).
SELECT pg_notify(@channel::text, @payload::text);
