-- +goose Up
CREATE TABLE credentials (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    provider         text NOT NULL CHECK (provider IN ('hetzner', 'aws', 'cloudflare')),
    -- the secret fields as JSON, sealed under the master key (AES-256-GCM,
    -- bound to this row's id); never returned.
    secret           bytea NOT NULL,
    hint             text NOT NULL,
    is_default       boolean NOT NULL DEFAULT false,
    verified_at      timestamptz,
    verify_error     text NOT NULL DEFAULT '',
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX credentials_name ON credentials (organization_id, name);
-- One default credential per provider per organization.
CREATE UNIQUE INDEX credentials_default ON credentials (organization_id, provider) WHERE is_default;

-- +goose Down
DROP TABLE credentials;
