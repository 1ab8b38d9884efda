-- +goose Up
-- Per-organization SSH CA state: the signing policy (NULL means the default
-- policy) and the KRL version, bumped whenever the revocation list changes.
-- The row is also the lock taken while CA keys are created or rotated.
CREATE TABLE ssh_settings (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    policy          jsonb,
    krl_version     bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- CA keys. The newest active key signs; older active keys stay trusted until
-- retired (or until their last certificate expires).
CREATE TABLE ssh_ca_keys (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    algorithm          text NOT NULL,
    public_key         text NOT NULL,
    fingerprint        text NOT NULL,
    -- PKCS#8 private key sealed under the master key, bound to id.
    sealed_private_key bytea NOT NULL,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    -- the next serial this key hands out: serials are allocated in their own
    -- statement, so a number is never handed out twice, even after a crash.
    next_serial        bigint NOT NULL DEFAULT 1 CHECK (next_serial > 0),
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at         timestamptz,
    UNIQUE (organization_id, id)
);
CREATE INDEX ssh_ca_keys_org_idx ON ssh_ca_keys (organization_id, created_at DESC);

-- Every issued certificate, recorded by the ssh_sign job before the API
-- hands it out.
CREATE TABLE ssh_certificates (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    ca_key_id       uuid NOT NULL,
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    -- the node the certificate was asked for, if any (no foreign key: the
    -- record outlives the node).
    node_id         uuid,
    serial          bigint NOT NULL CHECK (serial > 0),
    key_id          text NOT NULL,
    principals      text[] NOT NULL,
    key_type        text NOT NULL,
    key_fingerprint text NOT NULL,
    extensions      text[] NOT NULL DEFAULT '{}',
    source_address  text NOT NULL DEFAULT '',
    valid_after     timestamptz NOT NULL,
    valid_before    timestamptz NOT NULL,
    revoked_at      timestamptz,
    certificate     text NOT NULL,
    -- the River job that signed it: the API waits for this row.
    job_id          bigint UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, ca_key_id) REFERENCES ssh_ca_keys (organization_id, id) ON DELETE CASCADE,
    UNIQUE (ca_key_id, serial)
);
CREATE INDEX ssh_certificates_org_idx ON ssh_certificates (organization_id, created_at DESC, id);
CREATE INDEX ssh_certificates_revoked_idx ON ssh_certificates (organization_id, ca_key_id) WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP TABLE ssh_certificates;
DROP TABLE ssh_ca_keys;
DROP TABLE ssh_settings;
