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

-- name: RecordSSHCertificates :many
-- Records signed certificates (@certs: a JSON array of rows), each only if
-- its CA key is still its organization's signing key and the policy it was
-- checked against (policy_version) is still the current one; a row missing
-- from the result means: reload both and sign again. With each certificate
-- goes the audit entry of the API request that asked for it (none when
-- audit_action is null): one statement, one commit, so neither exists
-- without the other.
WITH input AS (
    SELECT (r->>'organization_id')::uuid AS organization_id, (r->>'ca_key_id')::uuid AS ca_key_id,
        (r->>'user_id')::uuid AS user_id, (r->>'node_id')::uuid AS node_id, (r->>'serial')::bigint AS serial,
        r->>'key_id' AS key_id, ARRAY(SELECT jsonb_array_elements_text(r->'principals')) AS principals,
        r->>'key_type' AS key_type, r->>'key_fingerprint' AS key_fingerprint,
        ARRAY(SELECT jsonb_array_elements_text(r->'extensions')) AS extensions, r->>'source_address' AS source_address,
        (r->>'valid_after')::timestamptz AS valid_after, (r->>'valid_before')::timestamptz AS valid_before,
        r->>'certificate' AS certificate, (r->>'job_id')::bigint AS job_id, (r->>'policy_version')::bigint AS policy_version,
        (r->>'audit_api_token_id')::uuid AS audit_api_token_id, r->>'audit_action' AS audit_action,
        (r->>'audit_status')::int AS audit_status, r->>'audit_request_id' AS audit_request_id, r->>'audit_ip' AS audit_ip
    FROM jsonb_array_elements(@certs::jsonb) AS r
), cert AS (
    INSERT INTO ssh_certificates (organization_id, ca_key_id, user_id, node_id, serial, key_id, principals, key_type,
        key_fingerprint, extensions, source_address, valid_after, valid_before, certificate, job_id)
    SELECT i.organization_id, i.ca_key_id, i.user_id, i.node_id, i.serial, i.key_id, i.principals, i.key_type,
        i.key_fingerprint, i.extensions, i.source_address, i.valid_after, i.valid_before, i.certificate, i.job_id
    FROM input i
    WHERE i.ca_key_id = (
            SELECT k.id FROM ssh_ca_keys k
            WHERE k.organization_id = i.organization_id AND k.status = 'active'
            ORDER BY k.created_at DESC, k.id DESC
            LIMIT 1)
      AND i.policy_version = COALESCE(
            (SELECT s.policy_version FROM ssh_settings s WHERE s.organization_id = i.organization_id), 0)
    ORDER BY i.serial
    RETURNING id, organization_id, user_id, serial
), audit AS (
    INSERT INTO audit_logs (organization_id, user_id, api_token_id, action, target, status, request_id, ip)
    SELECT c.organization_id, c.user_id, i.audit_api_token_id, i.audit_action, c.id::text, i.audit_status,
        COALESCE(i.audit_request_id, ''), COALESCE(i.audit_ip, '')
    FROM cert c JOIN input i ON i.serial = c.serial
    WHERE i.audit_action IS NOT NULL
)
SELECT id, serial FROM cert;

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
-- Revoked certificates of the keys still trusted, unless their recorded end
-- is a plausible time that has passed: a certificate whose recorded end is
-- not finite or not after its start or its record (a wrapped-around
-- validity) may be valid for ever, so it stays listed.
SELECT k.public_key, c.serial FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.revoked_at IS NOT NULL AND k.status = 'active'
  AND (c.valid_before > @now OR NOT isfinite(c.valid_before)
       OR c.valid_before <= c.valid_after OR c.valid_before <= c.created_at)
ORDER BY k.created_at DESC, k.id, c.serial;

-- name: SSHNodeExists :one
SELECT EXISTS (SELECT 1 FROM nodes WHERE organization_id = @organization_id AND id = @id);

-- name: NotifySSH :exec
-- Tells the other processes: a waiting API request that its job ended
-- (shardform_ssh_signed), or that an organization's CA keys or policy
-- changed (shardform_ssh_ca).
SELECT pg_notify(@channel::text, @payload::text);

-- name: SSHCertificatesByIDs :many
-- The certificates a search found (search package), in no order.
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_certificates c
JOIN ssh_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.id = ANY(@ids::uuid[]);
