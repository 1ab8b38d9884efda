-- name: GetSigningSSHHostCAKey :one
-- The organization's signing host CA key: its newest active one.
SELECT * FROM ssh_host_ca_keys
WHERE organization_id = @organization_id AND status = 'active'
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: ListSSHHostCAKeys :many
-- Every host CA key of the organization, newest first.
SELECT * FROM ssh_host_ca_keys WHERE organization_id = @organization_id
ORDER BY created_at DESC, id DESC;

-- name: GetSSHHostCAKey :one
SELECT * FROM ssh_host_ca_keys WHERE organization_id = @organization_id AND id = @id;

-- name: RetireSSHHostCAKey :one
UPDATE ssh_host_ca_keys SET status = 'retired', retired_at = now()
WHERE organization_id = @organization_id AND id = @id AND status = 'active'
RETURNING *;

-- name: InsertSSHHostCAKey :one
INSERT INTO ssh_host_ca_keys (id, organization_id, algorithm, public_key, fingerprint, sealed_private_key, created_at)
VALUES (@id, @organization_id, @algorithm, @public_key, @fingerprint, @sealed_private_key, clock_timestamp())
RETURNING *;

-- name: AllocateSSHHostSerial :one
-- Hands out the host CA key's next serial, in a transaction of its own.
UPDATE ssh_host_ca_keys SET next_serial = next_serial + 1
WHERE organization_id = @organization_id AND id = @id
RETURNING (next_serial - 1)::bigint AS serial;

-- name: GetSSHHostNode :one
-- The node and its DNS names (its A and AAAA records, auto-DNS's included,
-- that are not being deleted): the principals of its host certificates.
SELECT n.id, n.name, n.ipv4, n.ipv6,
       array(SELECT DISTINCT d.name FROM dns_records d
             WHERE d.organization_id = n.organization_id AND d.node_id = n.id AND d.type IN ('A', 'AAAA')
               AND d.status IN ('pending', 'synced')
             ORDER BY d.name)::text[] AS fqdns
FROM nodes n WHERE n.organization_id = @organization_id AND n.id = @id;

-- name: InsertSSHHostCertificate :one
-- Records a signed host certificate and the audit entry of the API request
-- that asked for it (none when audit_action is NULL) in one statement.
WITH cert AS (
    INSERT INTO ssh_host_certificates (organization_id, ca_key_id, node_id, user_id, serial, key_id, principals, key_type,
        key_fingerprint, valid_after, valid_before, certificate, job_id)
    VALUES (@organization_id, @ca_key_id, @node_id, @user_id, @serial, @key_id, @principals, @key_type,
        @key_fingerprint, @valid_after, @valid_before, @certificate, @job_id)
    RETURNING id, organization_id, user_id
), audit AS (
    INSERT INTO audit_logs (organization_id, user_id, api_token_id, action, target, status, request_id, ip)
    SELECT cert.organization_id, cert.user_id, sqlc.narg(audit_api_token_id)::uuid, sqlc.narg(audit_action)::text,
        cert.id::text, @audit_status::int, @audit_request_id::text, @audit_ip::text
    FROM cert
    WHERE sqlc.narg(audit_action)::text IS NOT NULL
)
SELECT id FROM cert;

-- name: GetSSHHostCertificateByJob :one
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_host_certificates c
JOIN ssh_host_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.job_id = @job_id;

-- name: ListSSHHostCertificates :many
SELECT c.*, k.fingerprint AS ca_fingerprint FROM ssh_host_certificates c
JOIN ssh_host_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR c.node_id = sqlc.narg(node_id))
ORDER BY c.created_at DESC, c.id
LIMIT @lim OFFSET @off;

-- name: CountSSHHostCertificates :one
SELECT count(*) FROM ssh_host_certificates c
WHERE c.organization_id = @organization_id
  AND (sqlc.narg(node_id)::uuid IS NULL OR c.node_id = sqlc.narg(node_id));

-- name: ListRevokedSSHHostSerials :many
-- Revoked host certificates (their node was deleted) of the host CA keys
-- still trusted, until they expire.
SELECT k.public_key, c.serial FROM ssh_host_certificates c
JOIN ssh_host_ca_keys k ON k.organization_id = c.organization_id AND k.id = c.ca_key_id
WHERE c.organization_id = @organization_id AND c.revoked_at IS NOT NULL AND c.valid_before > @now
ORDER BY k.created_at DESC, k.id, c.serial;

-- name: LatestSSHHostRevocation :one
-- The KRL's version: when the newest revocation happened (0: none).
SELECT coalesce(max(extract(epoch FROM revoked_at))::bigint, 0)::bigint FROM ssh_host_certificates
WHERE organization_id = @organization_id AND revoked_at IS NOT NULL;
