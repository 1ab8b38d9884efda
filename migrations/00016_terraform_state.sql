-- +goose Up
-- Terraform state served by shardform as Terraform's http backend (package
-- tfstate). A state belongs to an organization and is either a provision
-- request's (provision_id) or a custom one a user's own Terraform writes
-- (name). Every write is a version, sealed under the master key; a lock is a
-- row with a lease its run renews; a run reaches its state with a credential
-- of its own, stored hashed.
CREATE TABLE tf_states (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provision_id    uuid UNIQUE REFERENCES provision_requests (id) ON DELETE CASCADE,
    name            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name),
    -- exactly one of the two: a provision request's state or a named one.
    CHECK ((provision_id IS NULL) <> (name IS NULL))
);

CREATE TABLE tf_state_versions (
    state_id   uuid NOT NULL REFERENCES tf_states (id) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version > 0),
    serial     bigint NOT NULL CHECK (serial >= 0),
    lineage    text NOT NULL,
    -- sha256 of the plaintext state, hex.
    checksum   text NOT NULL,
    run_id     uuid,
    -- the plaintext's length in bytes.
    size       bigint NOT NULL CHECK (size >= 0),
    -- the state JSON sealed with the context "tfstate:<state id>:<version>".
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (state_id, version)
);

CREATE TABLE tf_state_locks (
    state_id   uuid PRIMARY KEY REFERENCES tf_states (id) ON DELETE CASCADE,
    lock_id    text NOT NULL,
    -- Terraform's LockInfo as the client sent it.
    info       jsonb NOT NULL,
    run_id     uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX tf_state_locks_run_idx ON tf_state_locks (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE tf_run_credentials (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_id    uuid NOT NULL REFERENCES tf_states (id) ON DELETE CASCADE,
    run_id      uuid NOT NULL,
    -- sha256 of the password.
    secret_hash bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tf_run_credentials_state_idx ON tf_run_credentials (state_id, expires_at);
CREATE INDEX tf_run_credentials_run_idx ON tf_run_credentials (run_id);

-- +goose Down
DROP TABLE tf_run_credentials;
DROP TABLE tf_state_locks;
DROP TABLE tf_state_versions;
DROP TABLE tf_states;
