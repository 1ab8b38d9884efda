-- +goose Up
-- The device-authorization grant (RFC 8628) behind `shardform login`: a
-- device (the CLI) asks for a pair of codes, a signed-in user approves the
-- short user code for one of their organizations, and the device's next poll
-- with the long device code receives an API token minted at that moment.
-- The device code is stored hashed (SHA-256, like every other token); the
-- user code (8 characters without its dash) is plain, short-lived and
-- useless without a session's approval. No token secret is ever stored:
-- api_token_id names the token the poll minted. A row belongs to no
-- organization until it is approved.
CREATE TABLE device_authorizations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_code_hash bytea NOT NULL UNIQUE,
    user_code        text NOT NULL UNIQUE CHECK (user_code ~ '^[A-HJ-NP-Z2-9]{8}$'),
    client_name      text NOT NULL,
    scopes           text[] NOT NULL CHECK (cardinality(scopes) >= 1),
    interval_seconds integer NOT NULL CHECK (interval_seconds >= 1),
    last_polled_at   timestamptz,
    expires_at       timestamptz NOT NULL,
    organization_id  uuid REFERENCES organizations (id) ON DELETE CASCADE,
    approved_by      uuid REFERENCES users (id) ON DELETE CASCADE,
    approved_at      timestamptz,
    denied_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    denied_at        timestamptz,
    delivered_at     timestamptz,
    api_token_id     uuid REFERENCES api_tokens (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    CHECK (approved_at IS NULL OR denied_at IS NULL),
    CHECK ((approved_at IS NULL) = (approved_by IS NULL) AND (approved_at IS NULL) = (organization_id IS NULL)),
    CHECK (delivered_at IS NULL OR approved_at IS NOT NULL)
);
-- Expired rows are pruned by the next create.
CREATE INDEX device_authorizations_expires_idx ON device_authorizations (expires_at);

-- +goose Down
DROP TABLE device_authorizations;
