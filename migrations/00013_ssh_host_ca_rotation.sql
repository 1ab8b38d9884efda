-- +goose Up
-- Host CA keys can be rotated and retired like user CA keys: the newest
-- active key signs; every active key is in known-hosts; a retired key is
-- trusted no more.
ALTER TABLE ssh_host_ca_keys
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    ADD COLUMN retired_at timestamptz;

-- +goose Down
ALTER TABLE ssh_host_ca_keys DROP COLUMN retired_at, DROP COLUMN status;
