-- +goose Up
-- Each organization's SSH host CA: it signs the host keys of the
-- organization's nodes, and clients trust it with a @cert-authority line in
-- known_hosts (GET /v1/ssh/known-hosts). Kept apart from the user CA keys
-- (ssh_ca_keys) so a key can never sign both kinds of certificate. The newest
-- key signs; every key listed here is trusted.
CREATE TABLE ssh_host_ca_keys (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    algorithm          text NOT NULL,
    public_key         text NOT NULL,
    fingerprint        text NOT NULL,
    -- PKCS#8 private key sealed under the master key, bound to id.
    sealed_private_key bytea NOT NULL,
    -- the next serial this key hands out (see ssh_ca_keys.next_serial).
    next_serial        bigint NOT NULL DEFAULT 1 CHECK (next_serial > 0),
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (organization_id, id)
);
CREATE INDEX ssh_host_ca_keys_org_idx ON ssh_host_ca_keys (organization_id, created_at DESC);

-- Every issued host certificate, recorded by its ssh_sign_host job before
-- the API hands it out.
CREATE TABLE ssh_host_certificates (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    ca_key_id       uuid NOT NULL,
    -- the node whose host key was signed (no foreign key: the record
    -- outlives the node), and the admin who asked.
    node_id         uuid NOT NULL,
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    serial          bigint NOT NULL CHECK (serial > 0),
    key_id          text NOT NULL,
    principals      text[] NOT NULL,
    key_type        text NOT NULL,
    key_fingerprint text NOT NULL,
    valid_after     timestamptz NOT NULL,
    valid_before    timestamptz NOT NULL,
    certificate     text NOT NULL,
    job_id          bigint UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, ca_key_id) REFERENCES ssh_host_ca_keys (organization_id, id) ON DELETE CASCADE,
    UNIQUE (ca_key_id, serial)
);
CREATE INDEX ssh_host_certificates_org_idx ON ssh_host_certificates (organization_id, created_at DESC, id);

-- +goose Down
DROP TABLE ssh_host_certificates;
DROP TABLE ssh_host_ca_keys;
