-- +goose Up
-- One row: an HMAC of a fixed label under the master key the database was
-- first started with, so a process started with another key (another
-- working directory, a lost SHARDFORM_MASTER_KEY) refuses to run instead of
-- failing every session and credential later.
CREATE TABLE master_key_check (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    mac        bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE master_key_check;
